"""Recording decisions: versions, state, audit, GPC, event categories, expiry, reasons, batches."""

import datetime as dt
from unittest import mock

import pytest
from django.utils import timezone

from cdp.audit.models import AuditEntry
from consent.errors import CustomerInactive, InvalidDecision, NoticeVersionUnknown, PurposeUnknown
from consent.ledger import ledger_verify
from consent.models import (
    Channel,
    ConsentEvent,
    ConsentReason,
    ConsentState,
    Coverage,
    PurposeVersion,
)
from consent.selectors import consent_is_allowed
from consent.services import (
    ConsentDecision,
    consent_apply_category_preferences,
    consent_apply_gpc,
    consent_expire_due,
    consent_record,
    consent_record_many,
    consent_withdraw,
    notice_hash,
    purpose_update,
)

pytestmark = pytest.mark.django_db


def record(customer, code, granted, **kwargs):
    values = {"channel": Channel.API, "method": "web-form", "actor": "system"}
    values.update(kwargs)
    return consent_record(customer=customer, purpose_code=code, granted=granted, **values)


@pytest.fixture
def enqueued():
    """The (customer id, purpose) pairs handed to the hook task, instead of a broker."""
    calls = []
    with (
        mock.patch("consent.tasks.run_withdrawal_hooks.delay", lambda c, p: calls.append((c, p))),
        mock.patch(
            "consent.tasks.run_withdrawal_hooks_batch.delay",
            lambda pairs: calls.extend(tuple(pair) for pair in pairs),
        ),
    ):
        yield calls


# --- purposes and versions ---------------------------------------------------------------------


def test_editing_the_notice_creates_a_new_version_and_keeps_the_old(make_purpose):
    # Given a purpose at version 1
    purpose = make_purpose("t_news", notice_text="We send a weekly newsletter.")
    assert (purpose.version, purpose.notice_hash) == (
        1,
        notice_hash("We send a weekly newsletter."),
    )

    # When its notice text is edited
    updated = purpose_update(purpose=purpose, actor="user:1", notice_text="We send offers daily.")

    # Then it is version 2 and both wordings are kept
    assert updated.version == 2
    versions = list(
        PurposeVersion.objects.filter(purpose=purpose)
        .order_by("version")
        .values_list("version", "notice_text")
    )
    assert versions == [(1, "We send a weekly newsletter."), (2, "We send offers daily.")]
    audit = AuditEntry.objects.filter(action="consent.purpose_update").get()
    assert audit.details == {"fields": ["notice_text"], "version": 2}


def test_changing_coverage_only_does_not_create_a_version(make_purpose):
    purpose = make_purpose("t_cov", covers=[Coverage.ANALYTICS])
    updated = purpose_update(purpose=purpose, actor="user:1", covers=["analytics", "profiling"])
    assert (updated.version, updated.covers) == (1, ["analytics", "profiling"])
    assert PurposeVersion.objects.filter(purpose=purpose).count() == 1


def test_consent_under_an_older_version_stays_valid_and_shows_its_version(
    make_purpose, customer_in
):
    purpose = make_purpose("t_ver", notice_text="v1 text")
    customer = customer_in("gdpr")
    first = record(customer, "t_ver", True)
    purpose_update(purpose=purpose, actor="user:1", notice_text="v2 text")

    assert (first.purpose_version, first.notice_hash) == (1, notice_hash("v1 text"))
    assert consent_is_allowed(customer=customer, purpose_code="t_ver") is True
    assert ConsentState.objects.get(customer=customer).purpose_version == 1
    # a new decision gets the new version unless it names the old one
    assert record(customer, "t_ver", True).purpose_version == 2
    assert record(customer, "t_ver", True, notice_version=1).purpose_version == 1
    with pytest.raises(NoticeVersionUnknown):
        record(customer, "t_ver", True, notice_version=3)


# --- recording ---------------------------------------------------------------------------------


def test_record_appends_updates_state_and_audits_in_one_go(make_purpose, customer_in):
    make_purpose("marketing")
    customer = customer_in("gdpr")
    event = record(customer, "marketing", True, actor="user:7")

    state = ConsentState.objects.get(customer=customer, purpose_id="marketing")
    assert (state.granted, state.since, state.channel, state.method, state.event_seq) == (
        True,
        event.at,
        "api",
        "web-form",
        event.seq,
    )
    audit = AuditEntry.objects.filter(action="consent.grant").get()
    assert (audit.actor, audit.object_id) == ("user:7", str(customer.id))
    assert audit.details == {
        "purpose": "marketing",
        "version": 1,
        "channel": "api",
        "method": "web-form",
        "seq": event.seq,
        "reason_given": False,
    }


def test_withdrawal_enqueues_the_hook_after_commit_only(
    make_purpose, customer_in, enqueued, django_capture_on_commit_callbacks
):
    make_purpose("marketing")
    customer = customer_in("gdpr")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        record(customer, "marketing", True)
    assert callbacks == []  # a grant has nothing to remove

    with django_capture_on_commit_callbacks(execute=True):
        consent_withdraw(
            customer=customer,
            purpose_code="marketing",
            channel=Channel.API,
            method="web-form",
            actor="system",
        )
        assert enqueued == []  # not before the commit
    assert enqueued == [(str(customer.id), "marketing")]


def test_older_imported_decision_goes_to_the_ledger_but_not_the_state(make_purpose, customer_in):
    make_purpose("marketing")
    customer = customer_in("gdpr")
    record(customer, "marketing", True)
    older = record(customer, "marketing", False, at=timezone.now() - dt.timedelta(days=30))
    state = ConsentState.objects.get(customer=customer)
    assert state.granted is True
    assert older.seq == 2
    assert ConsentEvent.objects.count() == 2


def test_staff_reason_is_stored_encrypted_and_the_ledger_only_knows_one_was_given(
    make_purpose, customer_in
):
    make_purpose("marketing")
    customer = customer_in("gdpr")
    event = record(
        customer,
        "marketing",
        False,
        channel=Channel.ADMIN,
        method="phone-call",
        reason="Customer phoned, asked to stop",
    )
    assert event.proof == {"reason_given": True}
    reason = ConsentReason.objects.get(event_seq=event.seq)
    assert reason.text == "Customer phoned, asked to stop"
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT text FROM consent_consentreason")
        assert b"phoned" not in bytes(cursor.fetchone()[0])


@pytest.mark.parametrize(
    ("change", "error", "code"),
    [
        ({"purpose_code": "nope"}, PurposeUnknown, "consent_purpose_unknown"),
        ({"method": "jane@example.com"}, InvalidDecision, "consent_invalid"),
        ({"channel": "fax"}, InvalidDecision, "consent_invalid"),
        ({"at": dt.datetime(2030, 1, 1)}, InvalidDecision, "consent_invalid"),
        ({"expires_at": timezone.now() - dt.timedelta(days=1)}, InvalidDecision, "consent_invalid"),
        ({"proof": {"contact": "jane@example.com"}}, InvalidDecision, "consent_invalid"),
    ],
    ids=["purpose", "method-pii", "channel", "naive-at", "expiry-before", "proof-pii"],
)
def test_invalid_decisions_are_refused_and_nothing_is_written(
    make_purpose, customer_in, change, error, code
):
    make_purpose("marketing")
    customer = customer_in("gdpr")
    values = {"purpose_code": "marketing", "granted": True, "channel": "api", "method": "form"}
    values.update(change)
    with pytest.raises(error) as excinfo:
        consent_record(customer=customer, actor="system", **values)
    assert excinfo.value.code == code
    assert "jane" not in excinfo.value.message
    assert ConsentEvent.objects.count() == 0
    assert ConsentState.objects.count() == 0


def test_erased_customer_cannot_be_given_consent(make_purpose, customer_in):
    make_purpose("marketing")
    customer = customer_in("gdpr")
    customer.status = "erased"
    with pytest.raises(CustomerInactive):
        record(customer, "marketing", True)


def test_batch_is_one_chain_one_state_per_pair_and_one_audit_entry(make_purpose, customer_in):
    make_purpose("marketing")
    make_purpose("analytics")
    a, b = customer_in("gdpr"), customer_in("ccpa")
    now = timezone.now()
    decisions = [
        ConsentDecision(
            customer=a,
            purpose_code="marketing",
            granted=True,
            channel="import",
            method="csv",
            at=now - dt.timedelta(hours=2),
        ),
        ConsentDecision(
            customer=a,
            purpose_code="marketing",
            granted=False,
            channel="import",
            method="csv",
            at=now - dt.timedelta(hours=1),
        ),
        ConsentDecision(
            customer=b, purpose_code="analytics", granted=True, channel="import", method="csv"
        ),
    ]
    events = consent_record_many(decisions=decisions, actor="user:3")
    assert [e.seq for e in events] == [1, 2, 3]
    assert ledger_verify().checked == 3
    states = dict(
        ConsentState.objects.values_list("customer_id", "granted").order_by("customer_id")
    )
    assert states == {a.id: False, b.id: True}
    batch = AuditEntry.objects.get(action="consent.record_batch")
    assert batch.details == {
        "first_seq": 1,
        "last_seq": 3,
        "count": 3,
        "granted": 2,
        "withdrawn": 1,
        "channels": ["import"],
    }


# --- GPC ---------------------------------------------------------------------------------------


def test_gpc_opts_out_of_sale_sharing_once_and_absence_is_no_opt_in(make_purpose, customer_in):
    # Given a CCPA customer, allowed for sale/sharing by default
    customer = customer_in("ccpa")
    assert consent_is_allowed(customer=customer, purpose_code="sale_sharing") is True

    # When a GPC signal arrives twice
    first = consent_apply_gpc(customer=customer, actor="token:abc", ip="198.51.100.4")
    second = consent_apply_gpc(customer=customer, actor="token:abc")

    # Then one opt-out is recorded, with method gpc, and the customer is no longer allowed
    assert [(e.purpose_code, e.granted, e.channel, e.method) for e in first] == [
        ("sale_sharing", False, "gpc", "gpc")
    ]
    assert first[0].proof == {"signal": "Sec-GPC: 1", "via": "api"}
    assert second == []
    assert ConsentEvent.objects.filter(method="gpc").count() == 1
    assert consent_is_allowed(customer=customer, purpose_code="sale_sharing") is False
    # a later grant for something else, without the signal, does not opt back in
    record(customer, "analytics", True)
    assert consent_is_allowed(customer=customer, purpose_code="sale_sharing") is False


def test_gpc_covers_every_purpose_covering_sale_sharing(make_purpose, customer_in):
    make_purpose("t_partner_ads", covers=[Coverage.SALE_SHARING, Coverage.MARKETING])
    customer = customer_in("ccpa")
    events = consent_apply_gpc(customer=customer, actor="system")
    assert sorted(e.purpose_code for e in events) == ["sale_sharing", "t_partner_ads"]


# --- event consent (Segment categoryPreferences) -----------------------------------------------


def test_category_preferences_become_ledger_entries_with_the_message_as_proof(customer_in):
    customer = customer_in("gdpr")
    report = consent_apply_category_preferences(
        customer=customer,
        preferences={"Analytics": True, "Advertising": False, "Functional": True, "x": "yes"},
        message_id="msg-123",
        source="source:web",
        actor="source:web",
    )
    assert report.__dict__ == {
        "recorded": 3,
        "unchanged": 0,
        "ignored_categories": 2,
        "unknown_purposes": 0,
    }
    entries = list(
        ConsentEvent.objects.order_by("purpose_code").values_list(
            "purpose_code", "granted", "channel", "method", "proof"
        )
    )
    assert entries == [
        (
            "analytics",
            True,
            "event",
            "category_preferences",
            {
                "message_id": "msg-123",
                "message_id_hash": None,
                "source": "source:web",
                "categories": ["Analytics"],
            },
        ),
        (
            "marketing",
            False,
            "event",
            "category_preferences",
            {
                "message_id": "msg-123",
                "message_id_hash": None,
                "source": "source:web",
                "categories": ["Advertising"],
            },
        ),
        (
            "sale_sharing",
            False,
            "event",
            "category_preferences",
            {
                "message_id": "msg-123",
                "message_id_hash": None,
                "source": "source:web",
                "categories": ["Advertising"],
            },
        ),
    ]


def test_repeated_preferences_record_nothing_and_withdrawal_wins_a_conflict(customer_in, settings):
    settings.CDP_CONSENT_CATEGORY_MAP = '{"ads": ["marketing"], "email": ["marketing"]}'
    customer = customer_in("gdpr")
    args = {"customer": customer, "message_id": "m1", "source": "s", "actor": "system"}
    first = consent_apply_category_preferences(preferences={"ads": True, "email": False}, **args)
    again = consent_apply_category_preferences(preferences={"ads": True, "email": False}, **args)
    assert (first.recorded, again.recorded, again.unchanged) == (1, 0, 1)
    assert ConsentState.objects.get(customer=customer).granted is False


def test_unknown_purpose_in_the_map_is_counted_not_recorded(customer_in, settings):
    settings.CDP_CONSENT_CATEGORY_MAP = {"ads": ["no-such-purpose"]}
    report = consent_apply_category_preferences(
        customer=customer_in("gdpr"),
        preferences={"ads": True},
        message_id="m",
        source="s",
        actor="system",
    )
    assert (report.recorded, report.unknown_purposes) == (0, 1)


def test_malformed_category_map_names_the_setting(customer_in, settings):
    from django.core.exceptions import ImproperlyConfigured

    settings.CDP_CONSENT_CATEGORY_MAP = '{"ads": "marketing"}'
    with pytest.raises(ImproperlyConfigured, match="CDP_CONSENT_CATEGORY_MAP"):
        consent_apply_category_preferences(
            customer=customer_in("gdpr"),
            preferences={},
            message_id="m",
            source="s",
            actor="system",
        )


# --- expiry ------------------------------------------------------------------------------------


def test_expiry_is_written_to_the_ledger_and_runs_the_hook(
    make_purpose, customer_in, enqueued, django_capture_on_commit_callbacks
):
    # Given a grant that expired an hour ago and one that has not
    make_purpose("marketing")
    expired, current = customer_in("gdpr"), customer_in("gdpr")
    at = timezone.now() - dt.timedelta(days=1)
    grant = record(expired, "marketing", True, at=at, expires_at=at + dt.timedelta(hours=23))
    record(current, "marketing", True, expires_at=timezone.now() + dt.timedelta(days=1))

    # When the expiry job runs (twice)
    with django_capture_on_commit_callbacks(execute=True):
        assert consent_expire_due() == 1
    assert consent_expire_due() == 0

    # Then the ledger holds the expiry, the state is withdrawn, and the hook was enqueued once
    entry = ConsentEvent.objects.get(channel="expiry")
    assert (entry.granted, entry.method, entry.at, entry.actor) == (
        False,
        "expiry",
        grant.expires_at,
        "system",
    )
    assert entry.proof == {"expired_grant_seq": grant.seq}
    assert ConsentState.objects.get(customer=expired).granted is False
    assert ConsentState.objects.get(customer=current).granted is True
    assert enqueued == [(str(expired.id), "marketing")]
    assert ledger_verify().ok


def test_expire_consents_command_reports_the_count(make_purpose, customer_in, capsys):
    from django.core.management import call_command

    make_purpose("marketing")
    at = timezone.now() - dt.timedelta(days=1)
    record(customer_in("gdpr"), "marketing", True, at=at, expires_at=at + dt.timedelta(hours=1))
    call_command("expire_consents")
    assert capsys.readouterr().out.strip() == "1 expired grants recorded"


def test_restriction_runs_the_hook_for_every_purpose_after_commit(
    customer_in, enqueued, django_capture_on_commit_callbacks
):
    from consent.models import Purpose
    from consent.services import consent_customer_restricted

    customer = customer_in("gdpr")
    with django_capture_on_commit_callbacks(execute=True):
        consent_customer_restricted(customer_id=customer.id)
    codes = sorted(Purpose.objects.values_list("code", flat=True))
    assert sorted(enqueued) == [(str(customer.id), code) for code in codes]
