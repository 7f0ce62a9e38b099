import os

import numpy as np
import pytest
import sklearn

from segmentation.ml import storage
from segmentation.ml.cluster import run_clustering
from segmentation.ml.preprocess import preprocess_fit
from segmentation.ml.storage import (
    ModelErrorCode,
    ModelFormatVersionError,
    ModelMalformedError,
    ModelSignatureError,
    ModelSklearnVersionError,
    StoredModel,
    model_dumps,
    model_load,
    model_loads,
    model_save,
)

KEY = b"k" * 32


@pytest.fixture
def fitted(blobs) -> tuple[StoredModel, np.ndarray]:
    X, _ = blobs
    prep = preprocess_fit(X, ["a", "b", "c"])
    result = run_clustering(
        prep.pipeline.transform(X), algorithm="kmeans", params={"k": 4}, random_state=0
    )
    model = StoredModel(
        pipeline=prep.pipeline,
        clusterer=result.model,
        feature_names=prep.feature_names,
        log_features=prep.log_features,
        metadata={"run": 1},
    )
    return model, X


def test_round_trip_predicts_the_same_labels(tmp_path, fitted):
    model, X = fitted
    path = tmp_path / "model.bin"

    model_save(path, model, key=KEY)
    loaded = model_load(path, key=KEY)

    assert loaded.feature_names == ("a", "b", "c")
    assert loaded.metadata == {"run": 1}
    np.testing.assert_array_equal(
        loaded.clusterer.predict(loaded.pipeline.transform(X)),
        model.clusterer.predict(model.pipeline.transform(X)),
    )
    assert [p.name for p in tmp_path.iterdir()] == ["model.bin"]  # no temp file left behind


def test_save_replaces_an_existing_file_whole(tmp_path, fitted):
    model, _ = fitted
    path = tmp_path / "model.bin"
    path.write_bytes(b"old")

    model_save(path, model, key=KEY)

    assert model_load(path, key=KEY).metadata == {"run": 1}


@pytest.mark.parametrize("where", [0.3, 0.6, -1])
def test_a_tampered_byte_is_refused_before_unpickling(fitted, where, monkeypatch):
    model, _ = fitted
    data = bytearray(model_dumps(model, key=KEY))
    i = int(len(data) * where) if where > 0 else len(data) - 1
    data[i] ^= 0x01
    monkeypatch.setattr(storage.pickle, "loads", _never)

    with pytest.raises(ModelSignatureError) as caught:
        model_loads(bytes(data), key=KEY)

    assert caught.value.code == ModelErrorCode.SIGNATURE


def test_a_wrong_key_is_refused(fitted, monkeypatch):
    model, _ = fitted
    data = model_dumps(model, key=KEY)
    monkeypatch.setattr(storage.pickle, "loads", _never)

    with pytest.raises(ModelSignatureError):
        model_loads(data, key=b"x" * 32)


def test_another_sklearn_minor_version_is_refused(fitted, monkeypatch):
    model, _ = fitted
    major, minor = sklearn.__version__.split(".")[:2]
    with monkeypatch.context() as patched:
        patched.setattr(sklearn, "__version__", f"{major}.{int(minor) - 1}.0")
        data = model_dumps(model, key=KEY)
    monkeypatch.setattr(storage.pickle, "loads", _never)

    with pytest.raises(ModelSklearnVersionError) as caught:
        model_loads(data, key=KEY)

    assert caught.value.code == ModelErrorCode.SKLEARN_VERSION


def test_another_sklearn_patch_version_loads(fitted, monkeypatch):
    model, _ = fitted
    major, minor = sklearn.__version__.split(".")[:2]
    with monkeypatch.context() as patched:
        patched.setattr(sklearn, "__version__", f"{major}.{minor}.99")
        data = model_dumps(model, key=KEY)

    assert model_loads(data, key=KEY).metadata == {"run": 1}


def test_an_unknown_format_version_is_refused(fitted, monkeypatch):
    model, _ = fitted
    with monkeypatch.context() as patched:
        patched.setattr(storage, "FORMAT_VERSION", 99)
        data = model_dumps(model, key=KEY)
    monkeypatch.setattr(storage.pickle, "loads", _never)

    with pytest.raises(ModelFormatVersionError) as caught:
        model_loads(data, key=KEY)

    assert caught.value.code == ModelErrorCode.FORMAT_VERSION


def test_garbage_and_short_keys_are_refused():
    with pytest.raises(ModelMalformedError):
        model_loads(os.urandom(100), key=KEY)
    with pytest.raises(ValueError, match="16 bytes"):
        model_loads(b"", key=b"short")


def _never(*args, **kwargs):
    raise AssertionError("unpickled before the checks")
