"""The stored format of an encrypted value: AES-256-GCM with a versioned header.

    byte 0      format version (1)
    bytes 1-4   key id of the subject's data key (big-endian), so no trial decryption is needed
    bytes 5-16  96-bit random nonce
    rest        ciphertext and 128-bit tag

The associated data binds the header, table, column, subject and row: a ciphertext copied to
another row, column or subject fails authentication instead of decrypting.
"""

from __future__ import annotations

import os
import struct
import uuid

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cdp.crypto.errors import DecryptionError

FORMAT_V1 = 1
_HEADER = struct.Struct(">BI")
HEADER_BYTES = _HEADER.size
NONCE_BYTES = 12
OVERHEAD = HEADER_BYTES + NONCE_BYTES + 16
_BODY = HEADER_BYTES + NONCE_BYTES


def id_bytes(value: object) -> bytes:
    """Subject and row ids in the associated data: a UUID's 16 bytes, anything else as text."""
    if isinstance(value, uuid.UUID):
        return value.bytes
    return str(value).encode()


def location(table: str, column: str) -> bytes:
    """The table-and-column part of the associated data (constant per field, so computed once)."""
    return f"|{table}|{column}|".encode()


def associated_data(header: bytes, where: bytes, subject: bytes, row: bytes) -> bytes:
    return b"".join((header, where, subject, b"|", row))


def header_for(key_id: int) -> bytes:
    return _HEADER.pack(FORMAT_V1, key_id)


def seal(cipher: AESGCM, header: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """`aad` is `associated_data(header, ...)` for this header: callers cache its constant part."""
    nonce = os.urandom(NONCE_BYTES)
    return header + nonce + cipher.encrypt(nonce, plaintext, aad)


def nonces(count: int) -> list[bytes]:
    """`count` fresh random nonces from one read of the system's generator, for a writer that
    seals many values at once (one system call instead of one per value); each is used once."""
    pool = os.urandom(NONCE_BYTES * count)
    return [pool[i : i + NONCE_BYTES] for i in range(0, len(pool), NONCE_BYTES)]


def seal_with_nonce(
    cipher: AESGCM, header: bytes, nonce: bytes, plaintext: bytes, aad: bytes
) -> bytes:
    """`seal`, with a nonce from `nonces`: the same stored format."""
    return header + nonce + cipher.encrypt(nonce, plaintext, aad)


def key_id_of(blob: bytes) -> int:
    """The data key id in a stored value's header (checked, so a truncated value fails here)."""
    if len(blob) < OVERHEAD:
        raise DecryptionError("encrypted value is truncated")
    version, key_id = _HEADER.unpack_from(blob)
    if version != FORMAT_V1:
        raise DecryptionError(f"encrypted value has unknown format version {version}")
    return key_id


def open_sealed(cipher: AESGCM, blob: bytes, aad: bytes) -> bytes:
    """Authenticate and decrypt; InvalidTag propagates for the caller to name the location.

    `aad` is built from the header the caller expects, not the one stored, so a value whose
    header was altered (or names another key) fails authentication.
    """
    return cipher.decrypt(blob[HEADER_BYTES : HEADER_BYTES + NONCE_BYTES], blob[_BODY:], aad)
