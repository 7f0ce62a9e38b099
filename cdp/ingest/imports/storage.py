"""Uploaded files encrypted at rest: one data key per import job, wrapped by the current KEK.

The file is cut into frames of `FRAME_BYTES`; each frame is sealed with AES-256-GCM under the
job's key, with associated data binding it to the job, its position and whether it is the last
frame (so frames cannot be reordered, dropped or appended). Reading decrypts frame by frame, so
a file of any size is processed in constant memory.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import struct
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings

from cdp.crypto.errors import DecryptionError
from cdp.crypto.keyring import get_keyring

MAGIC = b"CDPIMP1\n"
FRAME_BYTES = 1024 * 1024
NONCE_BYTES = 12
_LENGTH = struct.Struct(">I")
# The keyring binds a wrapped key to a subject id and key id; a job's key is key 1 of its job.
_KEY_ID = 1


def storage_dir() -> Path:
    path = Path(getattr(settings, "CDP_IMPORT_DIR", "") or settings.VAR_DIR / "imports")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _subject(job_id: uuid.UUID) -> str:
    return f"import:{job_id}"


def _aad(job_id: uuid.UUID, frame: int, last: bool) -> bytes:
    return b"cdp-import|v1|" + job_id.bytes + struct.pack(">Q?", frame, last)


def new_job_key(job_id: uuid.UUID) -> tuple[bytes, str, bytes]:
    """A fresh data key for a job: (key, kek id, wrapped key to store on the job)."""
    key = AESGCM.generate_key(bit_length=256)
    kek_id, wrapped = get_keyring().wrap(key, subject_id=_subject(job_id), key_id=_KEY_ID)
    return key, kek_id, wrapped


def unwrap_job_key(job_id: uuid.UUID, kek_id: str, wrapped: bytes) -> bytes:
    return get_keyring().unwrap(
        bytes(wrapped), kek_id=kek_id, subject_id=_subject(job_id), key_id=_KEY_ID
    )


def _frames(source: IO[bytes]) -> Iterator[tuple[bytes, bool]]:
    current = source.read(FRAME_BYTES)
    while True:
        following = source.read(FRAME_BYTES) if current else b""
        yield current, not following
        if not following:
            return
        current = following


def encrypt_to_file(
    source: IO[bytes], *, job_id: uuid.UUID, key: bytes, path: Path
) -> tuple[int, str]:
    """Stream `source` into `path` encrypted; returns (plaintext bytes, plaintext SHA-256).

    Written to a temporary name and renamed, so a half-written file is never read.
    """
    cipher = AESGCM(key)
    digest = hashlib.sha256()
    size = 0
    tmp = path.with_suffix(".part")
    with tmp.open("wb") as out:
        out.write(MAGIC)
        for number, (frame, last) in enumerate(_frames(source)):
            digest.update(frame)
            size += len(frame)
            nonce = os.urandom(NONCE_BYTES)
            sealed = cipher.encrypt(nonce, frame, _aad(job_id, number, last))
            out.write(_LENGTH.pack(len(sealed)) + nonce + sealed)
        out.flush()
        os.fsync(out.fileno())
    tmp.replace(path)
    return size, digest.hexdigest()


class DecryptingReader(io.RawIOBase):
    """A read-only binary stream over an encrypted import file; `tell()` is plaintext bytes."""

    def __init__(self, path: Path, *, job_id: uuid.UUID, key: bytes) -> None:
        self._file = path.open("rb")
        if self._file.read(len(MAGIC)) != MAGIC:
            self._file.close()
            raise DecryptionError("import file has an unknown format")
        self._cipher = AESGCM(key)
        self._job_id = job_id
        self._frame = 0
        self._buffer = b""
        self._offset = 0
        self._done = False
        self.position = 0

    def readable(self) -> bool:
        return True

    def _next_frame(self) -> None:
        header = self._file.read(_LENGTH.size)
        if not header:
            raise DecryptionError("import file is truncated")
        (length,) = _LENGTH.unpack(header)
        nonce = self._file.read(NONCE_BYTES)
        sealed = self._file.read(length)
        last = self._file.peek(1)[:1] == b"" if hasattr(self._file, "peek") else False
        try:
            plain = self._cipher.decrypt(nonce, sealed, _aad(self._job_id, self._frame, last))
        except InvalidTag:
            raise DecryptionError("import file failed authentication") from None
        self._frame += 1
        self._buffer, self._offset = plain, 0
        self._done = last

    def readinto(self, target: memoryview) -> int:  # type: ignore[override]
        while self._offset >= len(self._buffer):
            if self._done:
                return 0
            self._next_frame()
        n = min(len(target), len(self._buffer) - self._offset)
        target[:n] = self._buffer[self._offset : self._offset + n]
        self._offset += n
        self.position += n
        return n

    def close(self) -> None:
        self._file.close()
        super().close()


def _state_aad(job_id: uuid.UUID) -> bytes:
    return b"cdp-import|state|v1|" + job_id.bytes


def state_seal(job_id: uuid.UUID, key: bytes, data: bytes) -> str:
    """The quality report's running state, sealed under the job's key for the job row: its
    reservoir holds values of personal traits, which must not sit in the database readable."""
    nonce = os.urandom(NONCE_BYTES)
    return base64.b64encode(nonce + AESGCM(key).encrypt(nonce, data, _state_aad(job_id))).decode()


def state_open(job_id: uuid.UUID, key: bytes, token: str) -> bytes:
    blob = base64.b64decode(token)
    try:
        return AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], _state_aad(job_id))
    except InvalidTag:
        raise DecryptionError("import quality state failed authentication") from None


def job_file_path(job_id: uuid.UUID) -> Path:
    return storage_dir() / f"{job_id}.enc"
