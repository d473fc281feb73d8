"""Encryption at rest: round trips, purpose binding, tampering, key rotation and blind indexes."""

from __future__ import annotations

import pytest

from marketplace import crypto
from marketplace.settings import get_settings


@pytest.fixture
def data_keys():
    """Switch the configured data keys for one test."""

    def use(value: str) -> None:
        object.__setattr__(get_settings(), "data_key", value)  # the settings are frozen by design

    original = get_settings().data_key
    yield use
    object.__setattr__(get_settings(), "data_key", original)


def test_round_trip_and_no_plaintext_in_the_ciphertext():
    token = crypto.encrypt("11010519491231002X", "member.id_number")
    assert "11010519491231002X" not in token and "002X" not in token
    assert token.startswith(crypto.current_key_id() + ".")
    assert crypto.decrypt(token, "member.id_number") == "11010519491231002X"


def test_equal_plaintexts_give_different_ciphertexts_but_equal_indexes():
    a = crypto.encrypt("same", "member.health")
    b = crypto.encrypt("same", "member.health")
    assert a != b
    assert crypto.blind_index("same", "x") == crypto.blind_index("same", "x")
    assert crypto.blind_index("same", "x") != crypto.blind_index("other", "x")
    assert crypto.blind_index("same", "x") != crypto.blind_index("same", "y")


def test_a_ciphertext_does_not_open_under_another_purpose_or_when_tampered():
    token = crypto.encrypt("diabetes", "member.health")
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(token, "member.id_number")
    key_id, body = token.split(".")
    flipped = body[:-3] + ("A" if body[-3] != "A" else "B") + body[-2:]
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(f"{key_id}.{flipped}", "member.health")


def test_rotation_new_key_first_old_key_still_decrypts_and_indexes_match(data_keys):
    data_keys("old-secret")
    old_token = crypto.encrypt("11010519491231002X", "member.id_number")
    old_index = crypto.blind_index("11010519491231002X", "member.id_number")

    data_keys("new-secret, old-secret")
    assert crypto.needs_rotation(old_token)
    assert crypto.decrypt(old_token, "member.id_number") == "11010519491231002X"
    assert old_index in crypto.blind_indexes("11010519491231002X", "member.id_number")
    new_token = crypto.encrypt("11010519491231002X", "member.id_number")
    assert not crypto.needs_rotation(new_token)

    data_keys("new-secret")
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(old_token, "member.id_number")
