"""Status links: signed, tenant- and ticket-bound, long-lived, useless for anything else."""

import time

import pytest
from itsdangerous import URLSafeTimedSerializer

from opora_shared.approvals import ApprovalClaim, ApprovalSigner
from opora_shared.settings import OporaSettings
from opora_shared.status_links import (
    DEFAULT_MAX_AGE_S,
    StatusLinkError,
    StatusLinks,
    status_link,
    status_url,
)

KEY = b"k" * 32


class TestSignAndVerify:
    def test_a_token_names_its_tenant_and_ticket(self):
        links = StatusLinks(KEY)
        assert links.verify(links.sign("romashka", "1042")) == ("romashka", "1042")

    def test_the_token_is_url_safe(self):
        token = StatusLinks(KEY).sign("romashka", "1042")
        assert all(c.isalnum() or c in "-_." for c in token)

    def test_links_last_a_year_by_default(self):
        assert StatusLinks(KEY).max_age_s == DEFAULT_MAX_AGE_S == 365 * 24 * 3600

    def test_an_altered_token_is_refused(self):
        links = StatusLinks(KEY)
        token = links.sign("romashka", "1042")
        altered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
        with pytest.raises(StatusLinkError, match="not valid"):
            links.verify(altered)

    def test_a_token_of_another_key_is_refused(self):
        token = StatusLinks(b"x" * 32).sign("romashka", "1042")
        with pytest.raises(StatusLinkError, match="not issued by this Opora"):
            StatusLinks(KEY).verify(token)

    def test_an_approval_token_is_not_a_status_token(self):
        approval = ApprovalSigner(KEY).sign(
            ApprovalClaim("romashka", "1042", "director@romashka.ru", "approve")
        )
        with pytest.raises(StatusLinkError):
            StatusLinks(KEY).verify(approval)

    def test_a_status_token_is_not_an_approval_token(self):
        from opora_shared.approvals import ApprovalLinkError

        with pytest.raises(ApprovalLinkError):
            ApprovalSigner(KEY).verify(StatusLinks(KEY).sign("romashka", "1042"))

    def test_unexpected_content_under_the_right_salt_is_refused(self):
        forged = URLSafeTimedSerializer(KEY, salt="opora.status.v1").dumps(["romashka"])
        with pytest.raises(StatusLinkError, match="unexpected content"):
            StatusLinks(KEY).verify(forged)

    def test_an_expired_token_is_refused_saying_so(self, monkeypatch):
        links = StatusLinks(KEY, max_age_s=3600)
        token = links.sign("romashka", "1042")
        later = time.time() + 2 * 3600
        monkeypatch.setattr(time, "time", lambda: later)
        with pytest.raises(StatusLinkError, match="expired"):
            links.verify(token)

    def test_a_short_key_is_refused(self):
        with pytest.raises(ValueError, match="16 bytes"):
            StatusLinks(b"short")


class TestUrls:
    def test_status_url_appends_the_token(self):
        assert status_url("https://help.example.com", "TOKEN") == (
            "https://help.example.com/status/TOKEN"
        )

    def test_a_trailing_slash_is_not_doubled(self):
        assert status_url("https://help.example.com/", "T") == "https://help.example.com/status/T"

    def test_status_link_signs_under_the_deployment_key(self, tmp_path):
        settings = OporaSettings(var_dir=tmp_path, public_url="https://help.example.com")
        link = status_link(settings, "vector", "7")
        assert link.startswith("https://help.example.com/status/")
        token = link.rsplit("/", 1)[1]
        assert StatusLinks.from_settings(settings).verify(token) == ("vector", "7")
        assert (tmp_path / "signing.key").exists()

    def test_a_configured_key_wins_over_the_key_file(self, tmp_path):
        settings = OporaSettings(var_dir=tmp_path, signing_key="s" * 32)
        token = StatusLinks.from_settings(settings).sign("vector", "7")
        assert StatusLinks(b"s" * 32).verify(token) == ("vector", "7")
        assert not (tmp_path / "signing.key").exists()
