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

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cdp.crypto.errors import DecryptionError

FORMAT_V1 = 1
_HEADER = struct.Struct(">BI")
HEADER_BYTES = _HEADER.size
NONCE_BYTES = 12
OVERHEAD = HEADER_BYTES + NONCE_BYTES + 16


def associated_data(header: bytes, table: str, column: str, subject_id: str, row_id: str) -> bytes:
    return b"%b|%b|%b|%b|%b" % (
        header,
        table.encode(),
        column.encode(),
        subject_id.encode(),
        row_id.encode(),
    )


def seal(
    cipher: AESGCM,
    key_id: int,
    plaintext: bytes,
    *,
    table: str,
    column: str,
    subject_id: str,
    row_id: str,
) -> bytes:
    header = _HEADER.pack(FORMAT_V1, key_id)
    nonce = os.urandom(NONCE_BYTES)
    aad = associated_data(header, table, column, subject_id, row_id)
    return header + nonce + cipher.encrypt(nonce, plaintext, aad)


def key_id_of(blob: bytes) -> int:
    """The data key id in a stored value's header (checked, so a truncated value fails here)."""
    if len(blob) < OVERHEAD:
        raise DecryptionError("encrypted value is truncated")
    version, key_id = _HEADER.unpack_from(blob)
    if version != FORMAT_V1:
        raise DecryptionError(f"encrypted value has unknown format version {version}")
    return key_id


def open_sealed(
    cipher: AESGCM,
    blob: bytes,
    *,
    table: str,
    column: str,
    subject_id: str,
    row_id: str,
) -> bytes:
    header = blob[:HEADER_BYTES]
    nonce = blob[HEADER_BYTES : HEADER_BYTES + NONCE_BYTES]
    aad = associated_data(header, table, column, subject_id, row_id)
    try:
        return cipher.decrypt(nonce, blob[HEADER_BYTES + NONCE_BYTES :], aad)
    except InvalidTag:
        raise DecryptionError(
            f"{table}.{column} of row {row_id} failed authentication "
            "(tampered, copied from another row or column, or the wrong key)"
        ) from None
