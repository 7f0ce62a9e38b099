"""The demo's data: a bundled sample of UCI Online Retail, loaded through the importer.

`cdp/ingest/fixtures/online_retail_sample.csv.gz`: 5,988 invoice lines (whole invoices) of 325
customers and 25 anonymous invoices from the UCI "Online Retail" data set (Daqing Chen, London
South Bank University; CC BY 4.0; DOI 10.24432/C5BW33), unchanged apart from the selection.
Loading is idempotent: a completed import of the sample is not repeated.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from cdp.ingest.imports.services import (
    import_job_create,
    import_job_run,
    import_source_get_or_create,
)
from cdp.ingest.models import ImportJob, ImportKind, ImportStatus

SAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "online_retail_sample.csv.gz"
SOURCE = "demo-online-retail"
ACTOR = "system:demo"
MAPPING = {
    "InvoiceNo": "invoice",
    "StockCode": "product_id",
    "Description": "ignore",
    "Quantity": "quantity",
    "InvoiceDate": "date",
    "UnitPrice": "price",
    "CustomerID": "customer_id",
    "Country": "country",
}


def demo_data_load(*, out: TextIO = sys.stdout) -> ImportJob | None:
    """Import the sample once (transactions: customers, orders, returns, anonymous invoices)."""
    import gzip

    done = ImportJob.objects.filter(
        source__name=SOURCE, status=ImportStatus.COMPLETED, file_name=SAMPLE.name
    ).first()
    if done is not None:
        print(f"Demo data already loaded (import {str(done.pk)[:8]}).", file=out, flush=True)
        return None
    print("Loading the UCI Online Retail sample through the importer...", file=out, flush=True)
    source = import_source_get_or_create(name=SOURCE, actor=ACTOR)
    with gzip.open(SAMPLE, "rb") as handle:
        job = import_job_create(
            source=source,
            kind=ImportKind.TRANSACTIONS,
            file=handle,  # type: ignore[arg-type]
            file_name=SAMPLE.name,
            actor=ACTOR,
            mapping=MAPPING,
            options={"currency": "GBP"},
            start=False,
        )
    ImportJob.objects.filter(pk=job.pk).update(status=ImportStatus.QUEUED)
    status = "continue"
    while status == "continue":
        status = import_job_run(job_id=job.pk, actor=ACTOR)
    job.refresh_from_db()
    print(
        f"Demo data: {job.rows_done:,} invoice lines, {job.created:,} stored, "
        f"{job.stats.get('profiles_created', 0):,} customers ({job.status}).",
        file=out,
        flush=True,
    )
    return job
