"""The encrypted upload (at rest, tamper-evident, deleted or kept per retention) and the
data-quality report."""

from __future__ import annotations

import datetime as dt
import io
import random
import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from cdp.crypto.errors import DecryptionError
from cdp.ingest.imports import quality
from cdp.ingest.imports.services import (
    import_files_purge,
    import_job_create,
    import_job_run,
    import_source_get_or_create,
)
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


def test_the_running_quality_state_is_sealed_and_the_report_keeps_no_persons_trait_value(
    settings,
) -> None:
    """The reservoir holds values of personal traits between chunks: on the job row it is
    sealed under the job's key; the final report gives their spread but not min or max."""
    settings.CDP_IMPORT_CHUNK_ROWS = 2  # three chunks: the state is saved between them
    incomes = [123457, 234568, 345679, 456781, 987654]
    body = "email,income,seats\n" + "".join(
        f"p{n}@shop.example,{income},{n + 1}\n" for n, income in enumerate(incomes)
    )
    source = import_source_get_or_create(name="crm", actor="test")
    job = import_job_create(
        source=source,
        kind="profiles",
        file=io.BytesIO(body.encode()),
        file_name="people.csv",
        actor="test",
        mapping={"email": "email", "income": "trait:income", "seats": "attribute:seats"},
        start=True,
    )

    with CaptureQueriesContext(connection) as captured:
        assert import_job_run(job_id=job.pk, actor="test") == "completed"

    job_writes = [q["sql"] for q in captured if 'UPDATE "ingest_importjob"' in q["sql"]]
    assert sum("_state_sealed" in sql for sql in job_writes) == 3  # once per chunk
    leaks = [q["sql"][:300] for q in captured for income in incomes if str(income) in q["sql"]]
    assert not leaks, leaks
    job.refresh_from_db()
    income, seats = job.quality["measures"]["income"], job.quality["measures"]["seats"]
    assert (income["count"], "min" in income, "max" in income) == (5, False, False)
    # Quartiles of five values are five persons' values: only counts and moments are given.
    assert "median" not in income and income["iqr_outliers"] == 1  # 987,654 is flagged
    assert (seats["min"], seats["max"]) == (1.0, 5.0)  # an attribute is not personal
    assert not any(k.startswith("_") for k in job.quality)
