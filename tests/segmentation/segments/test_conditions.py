"""The condition language: random valid conditions give the same members in SQL as a slow Python
evaluation on a small population; invalid ones fail with errors naming the path."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdp.ingest.models import Event
from cdp.profiles.models import Customer
from consent.selectors import consent_is_allowed
from segmentation.models import CustomerFeatures
from segmentation.segments.conditions import ConditionError, condition_validate
from segmentation.segments.selectors import SegmentRule, segment_member_ids, segment_preview_count
from tests.segmentation.segments.conftest import customer, event, features, grant

pytestmark = pytest.mark.django_db

NAMES = ["Product Viewed", "Product Added", "Order Completed"]
MISSING = object()
PURPOSE = "marketing"


# --- the population ------------------------------------------------------------------------------


def build_population(source: Any, now: dt.datetime, seed: int = 7) -> None:
    rng = random.Random(seed)
    made = []
    for n in range(16):
        attributes: dict[str, Any] = {}
        if rng.random() < 0.7:
            attributes["plan"] = rng.choice(["gold", "silver", "Gold", ""])
        if rng.random() < 0.7:
            attributes["score"] = rng.choice([0, 1, 2, 3, 5, -1, 1.5, 2.25, "3", None])
        if rng.random() < 0.5:
            attributes["vip"] = rng.choice([True, False, "true"])
        c = customer(country=rng.choice(["DE", "FR", "US", "GB"]), attributes=attributes)
        made.append(c)
        if rng.random() < 0.7:
            features(
                c.pk,
                frequency=rng.randint(0, 5),
                monetary=Decimal(rng.choice(["0", "10.5", "99.99", "250"])),
                recency_days=rng.choice([None, 1, 10, 40]),
                days_between_orders=rng.choice([None, 2.5, 7.0, 30.25]),
                favourite_category=rng.choice(["", "Shoes", "Hats"]),
            )
        for _ in range(rng.randint(0, 6)):
            properties: dict[str, Any] = {}
            if rng.random() < 0.7:
                properties["category"] = rng.choice(["Shoes", "Hats", "Shoe polish"])
            if rng.random() < 0.7:
                properties["quantity"] = rng.choice([1, 2, 3, 5, "2", 1.5])
            amount = rng.choice([None, Decimal("9.99"), Decimal("25"), Decimal("-5")])
            at = now - dt.timedelta(hours=rng.choice([0, 1, 24, 47, 48, 72, 24 * 10, 24 * 40]))
            event(source, c.pk, rng.choice(NAMES), at, amount=amount, **properties)
        if n % 4 == 3:
            type(c).objects.filter(pk=c.pk).update(status="restricted")
    grant([c for i, c in enumerate(made) if i % 3 != 0])
    grant([c for i, c in enumerate(made) if i % 3 == 0 and i % 2 == 0], granted=False)


# --- the slow Python evaluation ---------------------------------------------------------------


def _typed(value: Any, sample: Any) -> Any:
    """A JSON value seen through the type of the condition's value (as the SQL CASE does)."""
    if value is MISSING or value is None:
        return MISSING
    if isinstance(sample, bool):
        return value if isinstance(value, bool) else MISSING
    if isinstance(sample, str):
        return value if isinstance(value, str) else MISSING
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return MISSING
    return Decimal(str(value))


def _compare(value: Any, op: str, target: Any, *, empty_is_missing: bool) -> bool:
    if op == "exists":
        present = value is not MISSING and not (empty_is_missing and value == "")
        return present == target
    if value is MISSING:
        return False
    if op == "in":
        items = [t if isinstance(t, str) else Decimal(str(t)) for t in target]
        return value in items
    if op == "contains":
        return target in value
    if not isinstance(target, str | bool):
        target = Decimal(str(target))
    return {
        "eq": value == target,
        "ne": value != target,
        "lt": value < target,
        "lte": value <= target,
        "gt": value > target,
        "gte": value >= target,
    }[op]


def _json(document: dict[str, Any], key: str, op: str, target: Any) -> bool:
    value = document.get(key, MISSING)
    if op == "exists":
        return (value is not MISSING and value is not None) == target
    sample = target[0] if op == "in" else target
    return _compare(_typed(value, sample), op, target, empty_is_missing=False)


def evaluate(cond: dict[str, Any], c: dict[str, Any], now: dt.datetime) -> bool:
    if "all" in cond:
        return all(evaluate(x, c, now) for x in cond["all"])
    if "any" in cond:
        return any(evaluate(x, c, now) for x in cond["any"])
    if "not" in cond:
        return not evaluate(cond["not"], c, now)
    if "event" in cond:
        ((unit, amount),) = cond["within"].items()
        since = now - dt.timedelta(**{unit: amount})
        chosen = [
            e
            for e in c["events"]
            if e.name == cond["event"]
            and e.timestamp >= since
            and all(_json(e.properties, w["property"], w["op"], w["value"]) for w in cond["where"])
        ]
        if cond.get("aggregate", "count") == "count":
            total = Decimal(len(chosen))
        elif cond["of"] == "amount":
            total = sum((e.amount for e in chosen if e.amount is not None), Decimal(0))
        else:
            key = cond["of"][9:]
            total = sum(
                (
                    Decimal(str(e.properties[key]))
                    for e in chosen
                    if isinstance(e.properties.get(key), int | float)
                    and not isinstance(e.properties.get(key), bool)
                ),
                Decimal(0),
            )
        return _compare(total, cond["op"], cond["value"], empty_is_missing=False)
    name = cond["field"]
    if name.startswith("trait."):
        return _json(c["attributes"], name[6:], cond["op"], cond["value"])
    if name.startswith("feature."):
        row = c["features"]
        value = MISSING if row is None else getattr(row, name[8:])
        if value is None:
            value = MISSING
        elif value is not MISSING and not isinstance(value, str):
            value = Decimal(str(value))
        return _compare(value, cond["op"], cond["value"], empty_is_missing=True)
    return _compare(c[name], cond["op"], cond["value"], empty_is_missing=True)


def python_members(cond: dict[str, Any], now: dt.datetime) -> set:
    found = set()
    feature_rows = {f.customer_id: f for f in CustomerFeatures.objects.all()}
    for cust in Customer.objects.all():
        if not consent_is_allowed(customer=cust, purpose_code=PURPOSE, now=now):
            continue
        c = {
            "country": cust.country,
            "jurisdiction": cust.jurisdiction,
            "status": cust.status,
            "attributes": cust.attributes,
            "features": feature_rows.get(cust.pk),
            "events": list(Event.objects.filter(customer_id=cust.pk)),
        }
        if evaluate(cond, c, now):
            found.add(cust.pk)
    return found


# --- random valid conditions ---------------------------------------------------------------------

texts = st.sampled_from(["DE", "FR", "US", "GB", "", "gdpr", "other", "active", "E", "gold"])
numbers = st.one_of(st.integers(-2, 6), st.sampled_from([1.5, 2.25, 10.5, 99.99, 250, 0.5]))


def comparison(kinds: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """op and value for a field of one of `kinds` ("str", "num", "bool")."""
    options = []
    if "str" in kinds:
        options += [
            st.fixed_dictionaries(
                {"op": st.sampled_from(["eq", "ne", "contains"]), "value": texts}
            ),
            st.fixed_dictionaries(
                {"op": st.just("in"), "value": st.lists(texts, min_size=1, max_size=3)}
            ),
        ]
    if "num" in kinds:
        options += [
            st.fixed_dictionaries(
                {"op": st.sampled_from(["eq", "ne", "lt", "lte", "gt", "gte"]), "value": numbers}
            ),
            st.fixed_dictionaries(
                {"op": st.just("in"), "value": st.lists(numbers, min_size=1, max_size=3)}
            ),
        ]
    if "bool" in kinds:
        options.append(
            st.fixed_dictionaries({"op": st.sampled_from(["eq", "ne"]), "value": st.booleans()})
        )
    options.append(st.fixed_dictionaries({"op": st.just("exists"), "value": st.booleans()}))
    return st.one_of(options)


def leaf_of(field: str, kinds: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return comparison(kinds).map(lambda c: {"field": field, **c})


customer_leaf = st.one_of(
    *(leaf_of(f, ["str"]) for f in ("country", "jurisdiction", "status")),
    *(
        leaf_of(f"feature.{f}", ["num"])
        for f in ("frequency", "monetary", "recency_days", "days_between_orders")
    ),
    leaf_of("feature.favourite_category", ["str"]),
    *(leaf_of(f"trait.{k}", ["str", "num", "bool"]) for k in ("plan", "score", "vip", "absent")),
)

property_condition = st.one_of(
    comparison(["str", "num", "bool"]).map(lambda c: {"property": "category", **c}),
    comparison(["num", "str"]).map(lambda c: {"property": "quantity", **c}),
)

event_leaf = st.builds(
    lambda name, within, measure, where, op, value: {
        "event": name,
        "within": within,
        **measure,
        "where": where,
        "op": op,
        "value": value,
    },
    st.sampled_from(NAMES),
    st.one_of(
        st.integers(1, 45).map(lambda d: {"days": d}),
        st.integers(1, 100).map(lambda h: {"hours": h}),
    ),
    st.sampled_from(
        [
            {"aggregate": "count"},
            {},
            {"aggregate": "sum", "of": "amount"},
            {"aggregate": "sum", "of": "property.quantity"},
        ]
    ),
    st.lists(property_condition, max_size=2),
    st.sampled_from(["eq", "ne", "lt", "lte", "gt", "gte"]),
    numbers,
)

conditions = st.recursive(
    st.one_of(customer_leaf, event_leaf),
    lambda children: st.one_of(
        st.lists(children, min_size=1, max_size=3).map(lambda xs: {"all": xs}),
        st.lists(children, min_size=1, max_size=3).map(lambda xs: {"any": xs}),
        children.map(lambda x: {"not": x}),
    ),
    max_leaves=6,
)


def test_random_valid_conditions_select_the_same_members_as_python(source):
    now = timezone.now().replace(microsecond=0)
    build_population(source, now)
    seen_sizes: set[int] = set()

    @settings(
        max_examples=150,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        database=None,
    )
    @given(cond=conditions)
    def check(cond: dict[str, Any]) -> None:
        condition_validate(cond)
        sql_members = segment_member_ids(SegmentRule(PURPOSE, cond), now=now)
        assert sql_members == python_members(cond, now), cond
        seen_sizes.add(len(sql_members))

    check()
    assert len(seen_sizes) > 3  # the conditions really discriminate


def test_worked_examples_from_the_issue(source):
    now = timezone.now()
    browser, buyer, cart = customer(), customer(), customer()
    grant([browser, buyer, cart])
    for hours in (1, 5, 30, 200):
        event(
            source, browser.pk, "Product Viewed", now - dt.timedelta(hours=hours), category="Shoes"
        )
        event(source, buyer.pk, "Product Viewed", now - dt.timedelta(hours=hours), category="Shoes")
    event(source, buyer.pk, "Order Completed", now - dt.timedelta(days=3), amount=Decimal("20"))
    event(source, cart.pk, "Product Added", now - dt.timedelta(hours=2), quantity=2)
    event(source, cart.pk, "Product Added", now - dt.timedelta(hours=40), quantity=1)
    event(source, cart.pk, "Product Added", now - dt.timedelta(hours=60), quantity=9)
    viewed_no_purchase = {
        "all": [
            {
                "event": "Product Viewed",
                "where": [{"property": "category", "op": "eq", "value": "Shoes"}],
                "within": {"days": 30},
                "op": "gt",
                "value": 3,
            },
            {"event": "Order Completed", "within": {"days": 30}, "op": "eq", "value": 0},
        ]
    }
    abandoned = {
        "all": [
            {
                "event": "Product Added",
                "within": {"hours": 48},
                "aggregate": "sum",
                "of": "property.quantity",
                "op": "gte",
                "value": 3,
            },
            {"event": "Order Completed", "within": {"hours": 48}, "op": "eq", "value": 0},
        ]
    }
    assert segment_member_ids(SegmentRule(PURPOSE, viewed_no_purchase), now=now) == {browser.pk}
    assert segment_member_ids(SegmentRule(PURPOSE, abandoned), now=now) == {cart.pk}
    assert segment_preview_count(SegmentRule(PURPOSE, abandoned), now=now) == 1


# --- invalid conditions --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "error"),
    [
        (
            {
                "all": [
                    {"field": "country", "op": "eq", "value": "DE"},
                    {"field": "foo", "op": "eq", "value": 1},
                ]
            },
            "all[1].field: unknown field 'foo'",
        ),
        ({"field": "feature.nope", "op": "gt", "value": 1}, "field: unknown field 'feature.nope'"),
        (
            {"field": "feature.frequency", "op": "gt", "value": "3"},
            "value: wrong type: expected a number, got string",
        ),
        ({"field": "country", "op": "gt", "value": "DE"}, "op: 'gt' compares numbers only"),
        (
            {"field": "country", "op": "like", "value": "DE"},
            "op: unknown operator 'like'; one of eq, ne, lt, lte, gt, gte, in, exists, contains",
        ),
        (
            {"field": "country", "op": "in", "value": []},
            "value: 'in' takes a list of 1 to 1000 values",
        ),
        (
            {"field": "country", "op": "exists", "value": "yes"},
            "value: 'exists' takes true or false",
        ),
        ({"any": []}, "any: expected a non-empty list of conditions"),
        ({"not": {"field": "status", "op": "eq"}}, "not.value: missing"),
        ({"field": "country", "op": "eq", "value": "DE", "extra": 1}, "extra: unknown key 'extra'"),
        (
            {"event": "X", "within": {"weeks": 2}, "op": "gt", "value": 1},
            "within.weeks: unit must be 'days' or 'hours'",
        ),
        (
            {"event": "X", "within": {"days": 0}, "op": "gt", "value": 1},
            "within.days: expected a whole number from 1 to 3650",
        ),
        (
            {"event": "X", "within": {"days": 1}, "aggregate": "sum", "op": "gt", "value": 1},
            "of: 'sum' needs 'of': 'amount' or 'property.<name>'",
        ),
        (
            {
                "event": "X",
                "within": {"days": 1},
                "op": "gt",
                "value": 1,
                "where": [{"property": "a-b", "op": "eq", "value": 1}],
            },
            "where[0].property: invalid property name 'a-b' (letters, digits, _; max 64)",
        ),
        ("country = 'DE'", "expected an object"),
        (
            {"field": "country", "op": "eq", "value": "x\x00"},
            "value: text must not contain NUL characters",
        ),
        (
            {"field": "feature.monetary", "op": "gt", "value": float("nan")},
            "value: numbers must be finite",
        ),
    ],
)
def test_invalid_conditions_name_the_path(condition, error):
    with pytest.raises(ConditionError) as caught:
        condition_validate(condition)
    assert error in caught.value.errors
    assert caught.value.code == "segment_condition_invalid"


INJECTIONS = [
    "country; DROP TABLE profiles_customer; --",
    "trait.plan' OR '1'='1",
    'trait.a") OR true --',
    "feature.frequency) OR (1=1",
    "c.id",
    "trait.",
    "trait.x y",
]


@pytest.mark.parametrize("field", INJECTIONS)
def test_injection_in_field_names_is_refused_with_a_clear_error(field):
    with pytest.raises(ConditionError) as caught:
        condition_validate({"field": field, "op": "eq", "value": "x"})
    (message,) = caught.value.errors
    assert message.startswith("field: ") and (
        "unknown field" in message or "invalid trait" in message
    )


def test_injection_in_values_is_data_not_sql(source):
    a = customer(attributes={"plan": "x' OR '1'='1"})
    b = customer(attributes={"plan": "gold"})
    grant([a, b])
    hostile = [
        "x' OR '1'='1",
        "'; DROP TABLE profiles_customer; --",
        "%s",
        "%(x)s",
        "{}",
        "\\'",
        "$$; SELECT 1; $$",
    ]
    for value in hostile:
        matches = {a.pk} if value == "x' OR '1'='1" else set()
        plan_is = {"field": "trait.plan", "op": "eq", "value": value}
        assert segment_member_ids(SegmentRule(PURPOSE, plan_is)) == matches
        for cond in (
            {"field": "country", "op": "in", "value": [value, "XX"]},
            {"field": "trait.plan", "op": "contains", "value": value},
            {
                "event": value,
                "within": {"days": 1},
                "op": "gt",
                "value": 0,
                "where": [{"property": "category", "op": "eq", "value": value}],
            },
        ):
            assert segment_member_ids(SegmentRule(PURPOSE, cond)) <= matches
    assert Customer.objects.count() == 2  # the table is still there


@settings(max_examples=200, deadline=None, database=None)
@given(
    field=st.text(max_size=30),
    key=st.text(max_size=30),
    value=st.one_of(st.text(max_size=20), st.integers(), st.floats(allow_nan=True), st.none()),
)
def test_arbitrary_names_and_values_either_validate_or_give_condition_errors(field, key, value):
    for cond in (
        {"field": field, "op": "eq", "value": value},
        {"field": f"trait.{key}", "op": "eq", "value": value},
        {
            "event": field,
            "within": {"days": 1},
            "op": "gt",
            "value": value,
            "where": [{"property": key, "op": "eq", "value": value}],
        },
    ):
        try:
            condition_validate(cond)
        except ConditionError as exc:
            assert exc.errors and all(isinstance(e, str) for e in exc.errors)


def test_compiled_sql_never_contains_condition_text():
    from segmentation.segments.selectors import segment_members_sql, sql_render

    marker = "zz_marker_value_zz"
    cond = {
        "all": [
            {"field": "trait.zz_marker_key", "op": "eq", "value": marker},
            {
                "event": marker,
                "within": {"days": 1},
                "op": "gt",
                "value": 1,
                "where": [{"property": "zz_marker_prop", "op": "contains", "value": marker}],
            },
        ]
    }
    query, params = segment_members_sql(SegmentRule(PURPOSE, cond))
    text = sql_render(query)
    assert "zz_marker" not in text
    assert marker in params and "zz_marker_key" in params and "zz_marker_prop" in params
    with connection.cursor() as cursor:
        cursor.execute(text, params)


def test_predictive_scores_are_fields(source):
    """Issue 8: "segments can use them (churn risk above 0.7)"; no score row compares false."""
    from segmentation.personalization.models import CustomerScore

    now = timezone.now()
    risky, safe, unscored = customer(), customer(), customer()
    grant([risky, safe, unscored])
    CustomerScore.objects.create(customer=risky, kind="churn", score=0.82, scored_at=now)
    CustomerScore.objects.create(customer=safe, kind="churn", score=0.2, scored_at=now)
    CustomerScore.objects.create(customer=safe, kind="propensity", score=0.9, scored_at=now)

    def members(condition: dict[str, Any]) -> set:
        condition_validate(condition)
        return set(segment_member_ids(SegmentRule(PURPOSE, condition), now=now))

    assert members({"field": "score.churn", "op": "gt", "value": 0.7}) == {risky.pk}
    assert members({"field": "score.churn", "op": "exists", "value": False}) == {unscored.pk}
    assert members(
        {
            "all": [
                {"field": "score.propensity", "op": "gte", "value": 0.5},
                {"not": {"field": "score.churn", "op": "gt", "value": 0.7}},
            ]
        }
    ) == {safe.pk}
    with pytest.raises(ConditionError) as caught:
        condition_validate({"field": "score.lifetime", "op": "gt", "value": 1})
    assert "field: unknown score 'lifetime' (one of: churn, propensity, expected_spend)" in (
        caught.value.errors
    )
