"""Personal data at rest: AES-GCM encryption and keyed blind indexes, with rotatable keys.

Keys come from ``CLOUDMARKET_DATA_KEY``: one secret, or several separated by spaces or
commas, the first encrypting and all of them decrypting (that is how a key is rotated:
put the new one first, re-encrypt, then drop the old one).  Each secret is stretched with
HKDF into an encryption key and an index key, and named by a short key id that prefixes
every ciphertext and every blind index, so that a value says which key made it.

A blind index is an HMAC of a normalised value: equal values give equal indexes, so
duplicates are found and rows matched without decrypting anything, while the index alone
reveals nothing.  Each ciphertext is bound to its purpose (``context``) as associated data:
a ciphertext copied into another column does not decrypt.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from marketplace.settings import get_settings

NONCE_BYTES = 12
_ENCRYPTION_INFO = b"cloudmarket data encryption v1"
_INDEX_INFO = b"cloudmarket blind index v1"
_KEY_ID_INFO = b"cloudmarket key id v1"


class DecryptionError(Exception):
    """A ciphertext that no configured key opens (wrong key, wrong context or tampered)."""


@dataclass(frozen=True)
class DataKey:
    """One configured secret, stretched into its encryption key and index key."""

    key_id: str
    aead: AESGCM
    index_key: bytes


def _derive(secret: str, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret.encode("utf-8"))


def _make_key(secret: str) -> DataKey:
    key_id = _derive(secret, _KEY_ID_INFO).hex()[:8]
    return DataKey(
        key_id=key_id, aead=AESGCM(_derive(secret, _ENCRYPTION_INFO)), index_key=_derive(secret, _INDEX_INFO)
    )


@lru_cache(maxsize=4)
def _keys_for(raw: str) -> tuple[DataKey, ...]:
    secrets = [part for part in raw.replace(",", " ").split() if part]
    if not secrets:
        raise RuntimeError("CLOUDMARKET_DATA_KEY is empty: personal data cannot be encrypted")
    return tuple(_make_key(secret) for secret in secrets)


def keys() -> tuple[DataKey, ...]:
    """The configured keys, the current one first."""
    return _keys_for(get_settings().data_key)


def current_key_id() -> str:
    return keys()[0].key_id


def encrypt(plaintext: str, context: str) -> str:
    """``<key id>.<base64 of nonce + ciphertext>``, bound to ``context`` (e.g. ``member.id_number``)."""
    key = keys()[0]
    sealed = _seal(key, plaintext.encode("utf-8"), context)
    return f"{key.key_id}.{base64.urlsafe_b64encode(sealed).decode('ascii')}"


def decrypt(token: str, context: str) -> str:
    """The plaintext of :func:`encrypt`'s output, with whichever configured key made it."""
    key_id, _, body = token.partition(".")
    try:
        raw = base64.urlsafe_b64decode(body.encode("ascii"))
    except ValueError as exc:
        raise DecryptionError(f"ciphertext under key {key_id} does not open") from exc
    return _open(key_id, raw, context).decode("utf-8")


def encrypt_bytes(plaintext: bytes, context: str) -> bytes:
    """Bytes (an uploaded file) as ``<key id>.<nonce + ciphertext>``, bound to ``context``."""
    key = keys()[0]
    return key.key_id.encode("ascii") + b"." + _seal(key, plaintext, context)


def decrypt_bytes(sealed: bytes, context: str) -> bytes:
    """The plaintext of :func:`encrypt_bytes`'s output."""
    key_id, _, raw = bytes(sealed).partition(b".")
    return _open(key_id.decode("ascii", "replace"), raw, context)


def _seal(key: DataKey, plaintext: bytes, context: str) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + key.aead.encrypt(nonce, plaintext, context.encode("ascii"))


def _open(key_id: str, raw: bytes, context: str) -> bytes:
    for key in keys():
        if key.key_id == key_id:
            try:
                return key.aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], context.encode("ascii"))
            except (InvalidTag, ValueError) as exc:
                raise DecryptionError(f"ciphertext under key {key_id} does not open") from exc
    raise DecryptionError(f"no configured key has the id {key_id!r}")


def needs_rotation(token: str) -> bool:
    """True when a ciphertext or blind index was made with a key other than the current one."""
    return token.partition(".")[0] != current_key_id()


def _index_with(key: DataKey, value: str, context: str) -> str:
    digest = hmac.new(key.index_key, f"{context}\x00{value}".encode(), hashlib.sha256).hexdigest()
    return f"{key.key_id}.{digest[:40]}"


def blind_index(value: str, context: str) -> str:
    """The index of ``value`` under the current key, to store beside its ciphertext."""
    return _index_with(keys()[0], value, context)


def blind_indexes(value: str, context: str) -> list[str]:
    """The index of ``value`` under every configured key, to look a value up during a rotation."""
    return [_index_with(key, value, context) for key in keys()]
