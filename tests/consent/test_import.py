"""Bulk consent CSV: bad rows get a row, a column and a reason (no values); good rows apply."""

import io

import pytest

from cdp.profiles.models import IdentityKind
from cdp.profiles.services import IdentifierValue
from consent.imports import RowError, consent_import_csv
from consent.models import ConsentEvent, ConsentState

pytestmark = pytest.mark.django_db


def csv_file(text):
    return io.BytesIO(text.encode())


def test_bad_rows_get_reasons_and_good_rows_are_applied(customer_in):
    # Given customers known by e-mail, user id and customer id
    by_email = customer_in("gdpr", email="alice@example.com")
    by_user_id = customer_in("ccpa", identifiers=[IdentifierValue(IdentityKind.USER_ID, "crm-42")])
    by_id = customer_in("gdpr")
    text = (
        "identifier,purpose,state,timestamp,channel\n"
        "ALICE@example.com,marketing,granted,2024-05-01T10:00:00Z,\n"  # 2 good (e-mail)
        "crm-42,analytics,withdrawn,2024-05-02,api\n"  # 3 good (user id)
        f"{by_id.id},profiling,yes,2024-05-03T08:00:00+02:00,import\n"  # 4 good (customer id)
        "alice@example.com,no-such-purpose,granted,2024-05-01T10:00:00Z,\n"  # 5 unknown purpose
        "nobody@example.com,marketing,granted,2024-05-01T10:00:00Z,\n"  # 6 unknown customer
        "alice@example.com,marketing,granted,01/05/2024,\n"  # 7 bad date
        "alice@example.com,marketing,maybe,2024-05-01,fax\n"  # 8 bad state and channel
        ",marketing,granted,2024-05-01,\n"  # 9 missing identifier
    )

    # When the file is imported
    report = consent_import_csv(file=csv_file(text), actor="user:5")

    # Then each bad row has its reason, and the three good rows are in the ledger and the state
    assert report.errors == [
        RowError(5, "purpose", "unknown purpose"),
        RowError(6, "identifier", "no customer with this identifier"),
        RowError(7, "timestamp", "not an ISO 8601 date or time"),
        RowError(8, "channel", "must be admin, api, import or event"),
        RowError(8, "state", "must be granted or withdrawn"),
        RowError(9, "identifier", "missing value"),
    ]
    assert (report.rows, report.applied, report.rejected) == (8, 3, 5)
    states = {
        (s.customer_id, s.purpose_id): (s.granted, s.channel) for s in ConsentState.objects.all()
    }
    assert states == {
        (by_email.id, "marketing"): (True, "import"),
        (by_user_id.id, "analytics"): (False, "api"),
        (by_id.id, "profiling"): (True, "import"),
    }
    assert list(ConsentEvent.objects.order_by("seq").values_list("proof", flat=True)) == [
        {"import_row": 2},
        {"import_row": 3},
        {"import_row": 4},
    ]
    assert "alice" not in str(report.as_dict())
    assert "nobody" not in str(report.as_dict())


def test_missing_column_is_reported_and_nothing_applied():
    report = consent_import_csv(file=csv_file("identifier,state\nx,granted\n"), actor="user:5")
    assert report.errors == [RowError(1, "purpose, timestamp", "missing column")]
    assert report.applied == 0
    assert ConsentEvent.objects.count() == 0


def test_unknown_notice_version_and_erased_customer_are_rejected(customer_in):
    erased = customer_in("gdpr")
    erased.__class__.objects.filter(pk=erased.pk).update(status="erased")
    live = customer_in("gdpr")
    text = (
        "identifier,purpose,state,timestamp,notice_version\n"
        f"{live.id},marketing,granted,2024-01-01,9\n"
        f"{erased.id},marketing,granted,2024-01-01,1\n"
        f"{live.id},marketing,granted,2024-01-01,1\n"
    )
    report = consent_import_csv(file=csv_file(text), actor="system")
    assert report.errors == [
        RowError(2, "notice_version", "unknown version"),
        RowError(3, "identifier", "customer is erased"),
    ]
    assert report.applied == 1
