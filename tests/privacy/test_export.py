"""Access packages: every fact about the subject, decrypted; CSV safe against formulas; an HTML
report with no external resources; encrypted at rest; expiring, audited downloads."""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io
import json
import uuid
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone
from hypothesis import given, settings
from hypothesis import strategies as st

from cdp.api.errors import ApplicationError
from cdp.audit.models import AuditEntry
from cdp.privacy.export import (
    WITHHELD,
    csv_safe,
    export_csv,
    export_files,
    export_link_token,
    export_package_download,
    export_package_for_token,
)
from cdp.privacy.models import ExportPackage

pytestmark = pytest.mark.django_db


@pytest.fixture
def package(subject: Any, verified: Any, run: Any) -> tuple[Any, Any, dict[str, bytes]]:
    customer = subject(
        events=4,
        email="reader@example.com",
        first_name="=HYPERLINK(1)",
        traits={"ssn": "078-05-1120", "favourite": "tea", "account": {"password": "hunter2"}},
    )
    request = run(verified("access", "reader@example.com"))
    pkg = ExportPackage.objects.get(request=request)
    return customer, pkg, export_files(bytes(pkg.content))


def test_package_holds_every_fact_decrypted(package: Any) -> None:
    customer, _, files = package
    doc = json.loads(files["package.json"])
    assert doc["schema"] == "cdp.privacy.export/v1"
    assert doc["subject_found"] is True
    profile = doc["profiles"][0]
    assert profile["id"] == str(customer.id)
    assert profile["email"] == "reader@example.com"
    assert "email_index" not in profile  # blind indexes mean nothing to the subject
    identities = doc["records"]["profiles.Identity"]["rows"]
    assert sorted(i["value"] for i in identities) == sorted(["reader@example.com", customer.phone])
    events = doc["records"]["ingest.Event"]["rows"]
    assert len(events) == 4
    assert events[0]["payload"]["properties"]["note"].startswith(f"secret-{customer.id}")
    assert events[0]["source"]["label"].startswith("shop-")
    history = doc["consent_history"]
    assert [h["granted"] for h in history] == [False, True]
    assert history[0]["receipt"]["piiPrincipalId"] == str(customer.id)
    assert (
        doc["records"]["consent.ConsentReason"]["rows"][0]["text"] == "Subject changed their mind"
    )
    assert [r["type"] for r in doc["request_history"]] == ["access"]
    a15 = doc["article_15"]
    assert {p["code"] for p in a15["a_purposes"]} >= {"marketing", "analytics"}
    assert a15["g_sources"][0].startswith("shop-")
    assert "ingest.Event.customer" in doc["searched"]
    assert "schema.json" in files


def test_items_of_11_ccr_7024d_are_withheld(package: Any) -> None:
    _, _, files = package
    traits = json.loads(files["package.json"])["profiles"][0]["traits"]
    assert traits == {"ssn": WITHHELD, "favourite": "tea", "account": {"password": WITHHELD}}
    assert b"078-05-1120" not in b"".join(files.values())
    assert b"hunter2" not in b"".join(files.values())


def test_csv_cells_cannot_run_formulas(package: Any) -> None:
    _, _, files = package
    profiles_csv = files["csv/profiles.csv"].decode()
    assert "'=HYPERLINK(1)" in profiles_csv
    assert ",=HYPERLINK" not in profiles_csv
    for value in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"):
        assert csv_safe(value).startswith("'")
    assert csv_safe("plain") == "plain"
    assert csv_safe(None) == ""


def test_html_report_is_self_contained_and_states_article_15(package: Any) -> None:
    _, _, files = package
    html = files["report.html"].decode()
    for marker in ("(a) Purposes", "(b) Categories", "(c) Recipients", "(d) Retention"):
        assert marker in html
    for marker in ("(e) Your rights", "(f) Complaints", "(g) Sources", "(h) Automated"):
        assert marker in html
    for external in ("http://", "https://", "<script", "<link", "src="):
        assert external not in html
    assert "&#x27;=HYPERLINK(1)" in html or "'=HYPERLINK(1)" in html.replace("&#x27;", "'")


def test_package_is_encrypted_at_rest(package: Any) -> None:
    _, pkg, _ = package
    with connection.cursor() as cursor:
        cursor.execute("SELECT content FROM privacy_exportpackage WHERE id = %s", [pkg.id])
        stored = bytes(cursor.fetchone()[0])
    assert b"reader@example.com" not in stored
    assert not stored.startswith(b"PK")


def test_download_link_expires_and_every_download_is_audited(package: Any) -> None:
    _, pkg, _ = package
    token = export_link_token(pkg)
    assert export_package_for_token(token) == pkg
    content = export_package_download(package=pkg, actor="user:3")
    assert content.startswith(b"PK")
    export_package_download(package=pkg, actor="user:4")
    entries = AuditEntry.objects.filter(action="privacy.export_download").order_by("seq")
    assert [(e.actor, e.object_id) for e in entries] == [
        ("user:3", str(pkg.id)),
        ("user:4", str(pkg.id)),
    ]
    pkg.refresh_from_db()
    assert pkg.downloads == 2
    assert pkg.expires_at <= timezone.now() + dt.timedelta(hours=72)
    with pytest.raises(ApplicationError) as forged:
        export_package_for_token(token[:-2] + "xx")
    assert forged.value.code == "export_link_invalid"
    ExportPackage.objects.filter(pk=pkg.pk).update(expires_at=timezone.now())
    with pytest.raises(ApplicationError) as expired:
        export_package_for_token(token)
    assert expired.value.code == "export_link_expired"


def test_unknown_subject_gets_a_package_saying_so(verified: Any, run: Any) -> None:
    request = run(verified("access", "stranger@example.com"))
    files = export_files(bytes(request.packages.get().content))
    doc = json.loads(files["package.json"])
    assert doc["subject_found"] is False
    assert doc["records"] == {}
    assert "We hold no personal data about you" in files["report.html"].decode()


def test_scores_are_explained_from_the_model_inventory(
    subject: Any, verified: Any, run: Any
) -> None:
    """Art. 15(1)(h)/22: the package says what each score's model is for and what it uses."""
    from segmentation.personalization.models import CustomerScore, ModelInventory

    customer = subject(events=1, email="scored@example.com")
    CustomerScore.objects.create(
        customer=customer, kind="churn", score=0.82, scored_at=timezone.now()
    )
    inventory = ModelInventory.objects.get(kind="churn")
    request = run(verified("access", "scored@example.com"))
    files = export_files(bytes(ExportPackage.objects.get(request=request).content))
    section = json.loads(files["package.json"])["explanations"]["personalization.scores"]
    assert [(r["kind"], r["score"]) for r in section["rows"]] == [("churn", 0.82)]
    assert section["rows"][0]["purpose"] == inventory.purpose
    assert section["rows"][0]["inputs"] == inventory.inputs
    assert section["title"] in files["report.html"].decode()


def _events(customer: Any, source: Any, rows: list[dict[str, Any]]) -> None:
    from cdp.ingest.models import Event

    now = timezone.now()
    Event.objects.bulk_create(
        [
            Event(
                **{
                    "id": uuid.uuid4(),
                    "source": source,
                    "message_id": f"m-{uuid.uuid4().hex}",
                    "customer_id": customer.id,
                    "type": "track",
                    "name": "Order Completed",
                    "timestamp": now,
                    "received_at": now,
                    "properties": {},
                    **row,
                }
            )
            for row in rows
        ]
    )


def test_items_of_11_ccr_7024d_are_withheld_under_any_spelling_of_the_key(
    subject: Any, source: Any, verified: Any, run: Any
) -> None:
    """The quick test that spares most values the walk must not let through a spelling that
    the rule withholds (camel case, separators, a key ending in "pin"), encrypted or not."""
    customer = subject(events=0, email="spelling@example.com")
    payloads: list[Any] = [
        {"userPin": "secret-one"},
        {"order": {"pass_word": "secret-two", "kept": "visible-one"}},
        {"S.S.N": "secret-three"},
        [{"Tax-ID": "secret-four"}],
        {"name": "Zoë", "driver's license": "secret-five"},
        {"note": 'a "quoted" \\ value', "security_answer": "secret-six"},
    ]
    _events(
        customer,
        source,
        [
            {"payload": p, "properties": {"passwd": "secret-seven", "sku": "visible-two"}}
            for p in payloads
        ],
    )
    request = run(verified("access", "spelling@example.com"))
    files = export_files(bytes(ExportPackage.objects.get(request=request).content))
    everything = b"".join(files.values())
    for n in ("one", "two", "three", "four", "five", "six", "seven"):
        assert f"secret-{n}".encode() not in everything
    assert b"visible-one" in everything and b"visible-two" in everything
    rows = json.loads(files["package.json"])["records"]["ingest.Event"]["rows"]
    assert {"userPin": WITHHELD} in [r["payload"] for r in rows]
    assert all(r["properties"] == {"passwd": WITHHELD, "sku": "visible-two"} for r in rows)


def test_event_columns_read_as_the_models_write_them(
    subject: Any, source: Any, verified: Any, run: Any
) -> None:
    """Ids, timestamps (with and without microseconds, early years) and amounts come from the
    database as text: exactly what str() and isoformat() of the model's values give."""
    from cdp.ingest.models import Event

    customer = subject(events=0, email="columns@example.com")
    whole = timezone.now().replace(microsecond=0)
    _events(
        customer,
        source,
        [
            {"timestamp": whole, "amount": decimal.Decimal("-1.5"), "payload": {"a": 1}},
            {
                "timestamp": whole - dt.timedelta(microseconds=1),
                "original_timestamp": dt.datetime(999, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC),
                "amount": None,
                "payload": "text",
            },
        ],
    )
    request = run(verified("access", "columns@example.com"))
    files = export_files(bytes(ExportPackage.objects.get(request=request).content))
    rows = json.loads(files["package.json"])["records"]["ingest.Event"]["rows"]
    stored = Event.objects.filter(customer=customer).order_by("id")
    assert [r["id"] for r in rows] == [str(e.id) for e in stored]
    for row, event in zip(rows, stored, strict=True):
        assert row["customer"] == str(event.customer_id)
        assert row["timestamp"] == event.timestamp.isoformat()
        assert row["received_at"] == event.received_at.isoformat()
        original = event.original_timestamp
        assert row["original_timestamp"] == (original.isoformat() if original else None)
        assert row["amount"] == (None if event.amount is None else str(event.amount))
        assert row["payload"] == event.payload
    assert "0999-01-02T03:04:05.000006+00:00" in [r["original_timestamp"] for r in rows]


_CELLS = st.one_of(
    st.none(),
    st.text(alphabet='ab ,"\r\n\t=+-@\x00é', max_size=4),
    st.integers(-3, 3),
    st.booleans(),
    st.floats(allow_nan=False),
    st.dictionaries(st.text(alphabet='a,"', max_size=2), st.text(max_size=2), max_size=2),
    st.lists(st.integers(-1, 1), max_size=2),
)


@settings(max_examples=300, deadline=None)
@given(
    rows=st.lists(
        st.dictionaries(st.sampled_from(["a", "b,c", 'd"', "", "=e"]), _CELLS, max_size=4),
        max_size=4,
    )
)
def test_csv_files_are_what_the_csv_module_writes(rows: list[dict[str, Any]]) -> None:
    out = io.StringIO()
    columns = list(dict.fromkeys(key for row in rows for key in row))
    writer = csv.writer(out)
    writer.writerow([csv_safe(c) for c in columns])
    for row in rows:
        writer.writerow([csv_safe(row.get(c)) for c in columns])
    assert export_csv(rows) == out.getvalue()


def test_a_value_orjson_refuses_is_read_through_its_field(
    subject: Any, source: Any, verified: Any, run: Any
) -> None:
    """A plaintext orjson refuses (NaN, which the field's json.dumps writes) is read through the
    field's own open(), withholding included; the other values of the column are unaffected."""
    customer = subject(events=0, email="nan@example.com")
    _events(
        customer,
        source,
        [
            {"payload": {"x": float("nan"), "password": "secret-nan"}},
            {"payload": {"y": [1, "two"]}},
        ],
    )
    request = run(verified("access", "nan@example.com"))
    files = export_files(bytes(ExportPackage.objects.get(request=request).content))
    rows = json.loads(files["package.json"])["records"]["ingest.Event"]["rows"]
    assert sorted((r["payload"] for r in rows), key=len) == [
        {"y": [1, "two"]},
        {"x": None, "password": WITHHELD},
    ]
    assert b"secret-nan" not in b"".join(files.values())
