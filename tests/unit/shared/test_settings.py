import pytest
from pydantic import ValidationError

from opora_shared.settings import OporaSettings


class TestSettings:
    def test_defaults_are_the_briefs_addresses(self, monkeypatch):
        monkeypatch.delenv("OPORA_NATS_URL", raising=False)
        settings = OporaSettings()
        assert settings.nats_url == "nats://127.0.0.1:4222"
        assert settings.outbox_dir.as_posix() == "var/outbox"

    def test_environment_with_prefix_overrides(self, monkeypatch):
        monkeypatch.setenv("OPORA_NATS_URL", "nats://127.0.0.1:1,nats://127.0.0.1:2")
        assert OporaSettings().nats_servers == ["nats://127.0.0.1:1", "nats://127.0.0.1:2"]

    def test_a_url_without_scheme_is_refused_with_the_variable_name(self, monkeypatch):
        monkeypatch.setenv("OPORA_NATS_URL", "127.0.0.1:4222")
        with pytest.raises(ValidationError, match="OPORA_NATS_URL"):
            OporaSettings()
