import json

import pytest
from pydantic import BaseModel, ValidationError

from opora_shared.nats.deadletter import backoff_s, describe


class Model(BaseModel):
    email: int


class TestReasons:
    def test_validation_reason_names_the_field_but_not_the_value(self):
        try:
            Model.model_validate({"email": "secret.person@romashka.ru"})
        except ValidationError as exc:
            reason = describe(exc)
        assert "email" in reason
        assert "secret.person" not in reason

    def test_json_reason_gives_the_position(self):
        with pytest.raises(json.JSONDecodeError) as err:
            json.loads("{nope")
        assert "position 1" in describe(err.value)

    def test_backoff_doubles_then_caps(self):
        assert [backoff_s(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]
        assert backoff_s(50) == 30.0
