"""The demo's bundled Online Retail sample loads through the importer, once."""

from __future__ import annotations

import io

import pandas as pd
import pytest

from cdp.ingest.imports.demo import SAMPLE, demo_data_load
from cdp.ingest.models import Event, ImportStatus
from cdp.profiles.models import Customer

pytestmark = pytest.mark.django_db


def test_demo_sample_loads_customers_orders_and_anonymous_invoices_once() -> None:
    frame = pd.read_csv(SAMPLE, dtype=str, keep_default_na=False)
    lines = frame.drop(columns=["Description"]).drop_duplicates()
    customers = lines[lines.CustomerID != ""].CustomerID.nunique()
    anonymous = lines[lines.CustomerID == ""].InvoiceNo.nunique()
    out = io.StringIO()

    job = demo_data_load(out=out)

    assert job is not None and job.status == ImportStatus.COMPLETED
    assert (customers, anonymous) == (325, 25)
    assert job.rejected == 0
    assert Event.objects.count() == len(lines) == job.created
    assert Customer.objects.count() == customers + anonymous
    assert demo_data_load(out=out) is None
    assert Event.objects.count() == len(lines)
    assert "already loaded" in out.getvalue()
