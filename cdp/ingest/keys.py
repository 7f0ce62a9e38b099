"""Write keys: random, shown once, stored only as SHA-256 hashes.

A plain (unsalted) SHA-256 is enough here, unlike for passwords: the key is 240 random bits, so
there is nothing to guess, and an unsalted hash lets the key be found with one indexed lookup.
"""

from __future__ import annotations

import hashlib
import secrets

KEY_PREFIX = "wk_"
KEY_PREFIX_SHOWN = 11


def write_key_new() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(30)


def write_key_hash(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()
