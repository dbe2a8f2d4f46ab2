"""Dead letters: a message a consumer gave up on, kept with the reason, never lost silently."""

from pydantic import AwareDatetime, BaseModel, ConfigDict


class DeadLetter(BaseModel):
    """A message that could not be processed, with why, where it came from and its bytes."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    consumer: str
    subject: str
    stream: str | None
    stream_seq: int | None
    num_delivered: int
    error_type: str
    reason: str
    failed_at: AwareDatetime
    headers: dict[str, str]
    payload_b64: str
