"""Webhook signatures as an integrator verifies them (docs/notifications.md)."""

import hashlib
import hmac

from opora_notifier import signing

SECRET = b"integrator-shared-secret-123456"
BODY = b'{"trigger":"page","ticket":{"id":"1042"}}'


class TestWebhookSignature:
    def test_is_hmac_sha256_over_timestamp_dot_body(self):
        expected = hmac.new(SECRET, b"1767225600." + BODY, hashlib.sha256).hexdigest()
        assert signing.signature(SECRET, 1767225600, BODY) == f"v1={expected}"

    def test_a_receiver_verifies_it(self):
        header = signing.signature(SECRET, 1767225600, BODY)
        assert signing.verify(
            SECRET, timestamp="1767225600", body=BODY, header=header, now=1767225660
        )

    def test_a_changed_body_timestamp_or_secret_fails(self):
        header = signing.signature(SECRET, 1767225600, BODY)
        now = 1767225600
        assert not signing.verify(
            SECRET, timestamp="1767225600", body=BODY + b" ", header=header, now=now
        )
        assert not signing.verify(SECRET, timestamp="1767225601", body=BODY, header=header, now=now)
        assert not signing.verify(
            b"another-secret-0000000000", timestamp="1767225600", body=BODY, header=header, now=now
        )
        assert not signing.verify(SECRET, timestamp="soon", body=BODY, header=header, now=now)

    def test_a_replay_after_five_minutes_fails(self):
        header = signing.signature(SECRET, 1767225600, BODY)
        assert not signing.verify(
            SECRET, timestamp="1767225600", body=BODY, header=header, now=1767225600 + 301
        )

    def test_any_of_several_signatures_may_match_during_a_rotation(self):
        old = signing.signature(b"old-secret-0000000000000", 1767225600, BODY)
        new = signing.signature(SECRET, 1767225600, BODY)
        assert signing.verify(
            SECRET, timestamp="1767225600", body=BODY, header=f"{old}, {new}", now=1767225600
        )
