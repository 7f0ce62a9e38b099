"""The encrypted upload (at rest, tamper-evident, deleted or kept per retention) and the
data-quality report."""

from __future__ import annotations

import datetime as dt
import io
import random
import uuid

import pytest
from django.utils import timezone

from cdp.crypto.errors import DecryptionError
from cdp.ingest.imports import quality
from cdp.ingest.imports.services import import_files_purge
from cdp.ingest.imports.storage import (
    FRAME_BYTES,
    DecryptingReader,
    encrypt_to_file,
    job_file_path,
    new_job_key,
    unwrap_job_key,
)
from tests.ingest.imports.helpers import run_import

SECRET = b"jane.doe@shop.example"


def test_upload_is_encrypted_at_rest_and_streams_back_frame_by_frame(tmp_path) -> None:
    job_id = uuid.uuid4()
    key, kek_id, wrapped = new_job_key(job_id)
    content = (b"email\n" + SECRET + b"\n") * (FRAME_BYTES // 10)  # several frames
    path = tmp_path / "upload.enc"

    size, _ = encrypt_to_file(io.BytesIO(content), job_id=job_id, key=key, path=path)

    assert size == len(content)
    assert SECRET not in path.read_bytes()
    assert unwrap_job_key(job_id, kek_id, wrapped) == key
    with DecryptingReader(path, job_id=job_id, key=key) as reader:
        assert reader.read() == content
    with pytest.raises(DecryptionError):  # bound to its job
        DecryptingReader(path, job_id=uuid.uuid4(), key=key).read()
    data = bytearray(path.read_bytes())
    data[-5] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(DecryptionError):
        DecryptingReader(path, job_id=job_id, key=key).read()


@pytest.mark.django_db
def test_upload_is_deleted_after_the_job_unless_a_retention_is_set(settings) -> None:
    body = b"email\n" + SECRET + b"\n"
    done = run_import(body)
    assert done.file_deleted_at is not None
    assert not job_file_path(done.pk).exists()

    settings.CDP_IMPORT_RETENTION_DAYS = 3
    kept = run_import(body, source="other")

    assert kept.file_deleted_at is None
    assert SECRET not in job_file_path(kept.pk).read_bytes()
    assert kept.delete_after > timezone.now() + dt.timedelta(days=2)
    assert import_files_purge() == 0
    assert import_files_purge(now=timezone.now() + dt.timedelta(days=4)) == 1
    assert not job_file_path(kept.pk).exists()


def test_quality_report_flags_outliers_by_iqr_and_z_score() -> None:
    state = quality.new_state()
    rng = random.Random(1)
    for value in [10.0] * 50 + [11.0] * 50 + [12.0] * 50 + [500.0]:
        quality.observe_number(state, "amount", value, rng)
    for present in [True] * 9 + [False]:
        quality.observe_presence(state, "Income", present)

    report = quality.report(state, duplicates=2, rows=151)

    amount = report["measures"]["amount"]
    assert (amount["count"], amount["min"], amount["max"]) == (151, 10.0, 500.0)
    assert (amount["iqr_outliers"], amount["z_outliers"], amount["estimated"]) == (1, 1, False)
    assert report["columns"]["Income"] == {"missing": 1, "missing_share": 0.1}
    assert report["duplicates"] == 2
