"""Signed, versioned storage of fitted models (preprocessing pipeline + clusterer).

Pickle runs code while loading, so a model file is trusted only if it carries a valid HMAC-SHA256
made with the caller's key, checked in constant time BEFORE anything is unpickled (as
Paperless-ngx guards its classifier). Layout, all signed:

    MAGIC (8 bytes) | header length (4 bytes, big-endian) | header JSON | pickle | HMAC (32 bytes)

The header names the format version and the scikit-learn version that fitted the model; a file
from an unknown format or another scikit-learn major.minor is refused, because scikit-learn does
not promise that pickles load across versions. Writes go to a temporary file in the target's
directory and are renamed into place with `os.replace`, so readers never see half a file.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import os
import pickle
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sklearn

MAGIC = b"CDPSEGM\x00"
FORMAT_VERSION = 1
_DIGEST = hashlib.sha256
_SIG_LEN = 32
_LEN_BYTES = 4


class ModelErrorCode(enum.StrEnum):
    MALFORMED = "model_malformed"
    SIGNATURE = "model_signature_invalid"
    FORMAT_VERSION = "model_format_unsupported"
    SKLEARN_VERSION = "model_sklearn_version_mismatch"


class ModelLoadError(Exception):
    """A stored model that must not be used; `code` says why (no model content in messages)."""

    code: ModelErrorCode = ModelErrorCode.MALFORMED


class ModelMalformedError(ModelLoadError):
    code = ModelErrorCode.MALFORMED


class ModelSignatureError(ModelLoadError):
    code = ModelErrorCode.SIGNATURE


class ModelFormatVersionError(ModelLoadError):
    code = ModelErrorCode.FORMAT_VERSION


class ModelSklearnVersionError(ModelLoadError):
    code = ModelErrorCode.SKLEARN_VERSION


@dataclass
class StoredModel:
    """What a clustering run keeps to assign new customers later: the fitted preprocessing
    pipeline, the fitted clusterer, the feature order, and free-form run metadata."""

    pipeline: Any
    clusterer: Any
    feature_names: tuple[str, ...]
    log_features: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)


def _major_minor(version: str) -> tuple[str, ...]:
    return tuple(version.split(".")[:2])


def _check_key(key: bytes) -> None:
    if not isinstance(key, bytes | bytearray) or len(key) < 16:
        raise ValueError("the signing key must be at least 16 bytes")


def model_dumps(model: StoredModel, *, key: bytes) -> bytes:
    """Serialize and sign `model`."""
    _check_key(key)
    header = json.dumps(
        {"format_version": FORMAT_VERSION, "sklearn_version": sklearn.__version__},
        sort_keys=True,
    ).encode()
    body = (
        MAGIC
        + len(header).to_bytes(_LEN_BYTES, "big")
        + header
        + pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
    )
    return body + hmac.new(key, body, _DIGEST).digest()


def model_loads(data: bytes, *, key: bytes) -> StoredModel:
    """Verify, check versions, then unpickle; raises a ModelLoadError subclass on any refusal."""
    _check_key(key)
    if len(data) < len(MAGIC) + _LEN_BYTES + _SIG_LEN or not data.startswith(MAGIC):
        raise ModelMalformedError("not a stored segmentation model")
    body, signature = data[:-_SIG_LEN], data[-_SIG_LEN:]
    if not hmac.compare_digest(hmac.new(key, body, _DIGEST).digest(), signature):
        raise ModelSignatureError("model signature does not match: wrong key or altered file")
    start = len(MAGIC) + _LEN_BYTES
    header_len = int.from_bytes(body[len(MAGIC) : start], "big")
    try:
        header = json.loads(body[start : start + header_len])
        format_version = header["format_version"]
        fitted_with = str(header["sklearn_version"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelMalformedError("model header is unreadable") from exc
    if format_version != FORMAT_VERSION:
        raise ModelFormatVersionError(
            f"model format version {format_version!r} is not supported (expected {FORMAT_VERSION})"
        )
    if _major_minor(fitted_with) != _major_minor(sklearn.__version__):
        raise ModelSklearnVersionError(
            f"model was fitted with scikit-learn {fitted_with}, this is {sklearn.__version__}; "
            "re-run the clustering"
        )
    model = pickle.loads(body[start + header_len :])  # noqa: S301  (signature verified above)
    if not isinstance(model, StoredModel):
        raise ModelMalformedError("stored object is not a StoredModel")
    return model


def model_save(path: str | os.PathLike[str], model: StoredModel, *, key: bytes) -> None:
    """Write the signed model atomically: temp file in the same directory, fsync, os.replace."""
    target = Path(path)
    data = model_dumps(model, key=key)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def model_load(path: str | os.PathLike[str], *, key: bytes) -> StoredModel:
    """Read and verify a model written by `model_save`."""
    return model_loads(Path(path).read_bytes(), key=key)
