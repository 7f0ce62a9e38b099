"""Key-encryption keys (KEKs) from configuration, and wrapping of per-subject data keys.

KEKs never touch the database. The first key in CDP_KEKS wraps new data keys; every configured
key can unwrap, so rotation is: prepend a new key, run `manage.py rotate_keys`, drop the old one.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from cdp.crypto.errors import DecryptionError, UnknownKeyError

NONCE_BYTES = 12


def _wrap_aad(subject_id: str, key_id: int, kek_id: str) -> bytes:
    return f"cdp-dek|v1|{subject_id}|{key_id}|{kek_id}".encode()


@dataclass(frozen=True)
class Keyring:
    keks: tuple[tuple[str, bytes], ...]
    _ciphers: dict[str, AESGCM] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        for kek_id, key in self.keks:
            self._ciphers[kek_id] = AESGCM(key)

    @property
    def primary_id(self) -> str:
        return self.keks[0][0]

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(kek_id for kek_id, _ in self.keks)

    def wrap(self, dek: bytes, *, subject_id: str, key_id: int) -> tuple[str, bytes]:
        """Wrap a data key under the primary KEK; the result is bound to its subject and key id."""
        kek_id = self.primary_id
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[kek_id].encrypt(nonce, dek, _wrap_aad(subject_id, key_id, kek_id))
        return kek_id, nonce + sealed

    def primary_wrapper(self) -> tuple[str, Callable[[bytes, bytes, str, int], bytes]]:
        """The primary KEK's id and a function `(dek, nonce, subject_id, key_id) -> wrapped`
        that wraps exactly as `wrap` does, with the caller's nonce: for loops over thousands
        of new keys whose nonces come from one read of the system's generator."""
        kek_id = self.primary_id
        encrypt = self._ciphers[kek_id].encrypt

        def wrap(dek: bytes, nonce: bytes, subject_id: str, key_id: int) -> bytes:
            return nonce + encrypt(nonce, dek, _wrap_aad(subject_id, key_id, kek_id))

        return kek_id, wrap

    def unwrap(self, wrapped: bytes, *, kek_id: str, subject_id: str, key_id: int) -> bytes:
        cipher = self._ciphers.get(kek_id)
        if cipher is None:
            raise UnknownKeyError(
                f"data key of subject {subject_id} is wrapped by KEK {kek_id!r}, "
                "which CDP_KEKS does not configure"
            )
        try:
            return cipher.decrypt(
                wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], _wrap_aad(subject_id, key_id, kek_id)
            )
        except InvalidTag:
            raise DecryptionError(
                f"data key of subject {subject_id} failed authentication under KEK {kek_id!r}"
            ) from None


@lru_cache(maxsize=1)
def get_keyring() -> Keyring:
    return Keyring(tuple(settings.CDP_KEKS))


@receiver(setting_changed)
def _reset_keyring(*, setting: str, **kwargs: object) -> None:
    if setting == "CDP_KEKS":
        get_keyring.cache_clear()
