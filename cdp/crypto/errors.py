"""Typed errors of the encryption layer.

Messages name tables, columns, row ids and key ids, never a value: they end up in logs.
"""


class CryptoError(Exception):
    """Base class: every failure of the encryption layer."""


class DecryptionError(CryptoError):
    """A value could not be authenticated: tampered, moved to another row or column, wrong key."""


class KeyDestroyedError(DecryptionError):
    """The subject's data key no longer exists (crypto-shredded): its values are gone for good."""


class UnknownKeyError(CryptoError):
    """A wrapped data key names a key-encryption key that is not configured in CDP_KEKS."""


class EncryptionContextError(CryptoError):
    """An encrypted field was used where no row context exists (a query filter, update(), ...)."""


class NormalizationError(ValueError):
    """An identifier could not be normalised (not an e-mail address, not a phone number)."""
