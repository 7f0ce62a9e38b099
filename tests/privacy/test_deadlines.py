import datetime as dt

from cdp.privacy.deadlines import (
    add_business_days,
    add_months,
    deadlines_for,
    extended_due,
    regime_for,
)

UTC = dt.UTC
MONDAY = dt.datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def test_add_months_clamps_to_the_last_day_of_the_month() -> None:
    assert add_months(dt.datetime(2026, 1, 31, tzinfo=UTC), 1) == dt.datetime(
        2026, 2, 28, tzinfo=UTC
    )
    assert add_months(dt.datetime(2026, 11, 30, tzinfo=UTC), 3) == dt.datetime(
        2027, 2, 28, tzinfo=UTC
    )


def test_business_days_skip_weekends() -> None:
    assert add_business_days(MONDAY, 5) == MONDAY + dt.timedelta(days=7)
    assert add_business_days(MONDAY, 10) == MONDAY + dt.timedelta(days=14)
    assert add_business_days(MONDAY, 15) == MONDAY + dt.timedelta(days=21)


def test_gdpr_access_is_due_in_one_month_and_extends_by_two() -> None:
    d = deadlines_for(regime="gdpr", request_type="access", received_at=MONDAY)
    assert d.due_at == dt.datetime(2026, 12, 23, 9, 0, tzinfo=UTC)
    assert d.ack_due_at is None
    assert extended_due(regime="gdpr", request_type="access", due_at=d.due_at) == dt.datetime(
        2027, 2, 23, 9, 0, tzinfo=UTC
    )


def test_ccpa_delete_is_acknowledged_in_ten_business_days_and_answered_in_45() -> None:
    d = deadlines_for(regime="ccpa", request_type="erasure", received_at=MONDAY)
    assert d.ack_due_at == MONDAY + dt.timedelta(days=14)
    assert d.due_at == MONDAY + dt.timedelta(days=45)
    assert extended_due(
        regime="ccpa", request_type="erasure", due_at=d.due_at
    ) == MONDAY + dt.timedelta(days=90)


def test_opt_out_is_due_in_fifteen_business_days_and_cannot_be_extended() -> None:
    for regime in ("gdpr", "ccpa"):
        d = deadlines_for(regime=regime, request_type="opt_out_sale", received_at=MONDAY)
        assert d.due_at == MONDAY + dt.timedelta(days=21)
    try:
        extended_due(regime="ccpa", request_type="opt_out_sale", due_at=MONDAY)
    except ValueError:
        pass
    else:
        raise AssertionError("an opt-out must not be extendable")


def test_gdpr_objection_is_due_at_once() -> None:
    d = deadlines_for(regime="gdpr", request_type="objection", received_at=MONDAY)
    assert d.due_at == MONDAY + dt.timedelta(days=1)


def test_regime_is_proposed_from_the_jurisdiction() -> None:
    assert regime_for("ccpa") == "ccpa"
    assert regime_for("gdpr") == "gdpr"
    assert regime_for("other") == "gdpr"
    assert regime_for(None) == "gdpr"
