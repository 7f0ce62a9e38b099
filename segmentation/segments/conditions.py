"""The segment condition language: validation with path-named errors, and compilation to SQL.

A condition is JSON:

    {"all": [c, ...]}  {"any": [c, ...]}  {"not": c}
    {"field": "country", "op": "in", "value": ["DE", "AT"]}
    {"field": "trait.plan", "op": "eq", "value": "gold"}          # Customer.attributes (plaintext)
    {"field": "feature.frequency", "op": "gte", "value": 3}       # segmentation features
    {"field": "score.churn", "op": "gt", "value": 0.7}            # predictive scores
    {"event": "Product Viewed", "where": [{"property": "category", "op": "eq", "value": "Shoes"}],
     "within": {"days": 30}, "aggregate": "count", "op": "gt", "value": 3}
    {"event": "Product Added", "within": {"hours": 48}, "aggregate": "sum",
     "of": "property.quantity", "op": "gte", "value": 3}

Semantics (the SQL and the reference evaluator in the tests agree on them): a comparison whose
value is missing (no such trait, no feature row, a trait of another JSON type) is false, for `ne`
too; `not` negates a whole condition, so there is no third truth value. `exists` with true/false
asks whether the value is present (non-empty for text). Event aggregates count or sum the
customer's events of that name with `timestamp >= now - within` whose properties match every
`where` item; with no such event the count and the sum are 0.

Compilation produces one SQL expression per condition with `%s` parameters only: field names are
checked against fixed catalogues and a strict pattern and rendered as identifiers or parameters;
no value from the condition is ever spliced into the SQL text.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from psycopg import sql

from cdp.api.errors import ApplicationError

MAX_DEPTH = 8
MAX_NODES = 100
MAX_IN_ITEMS = 1000
MAX_STRING = 255
MAX_WHERE = 10
MAX_NUMBER = Decimal("1e15")
MAX_DAYS = 3650

KEY_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")

COMPARE_OPS = ("eq", "ne", "lt", "lte", "gt", "gte")
ORDER_OPS = ("lt", "lte", "gt", "gte")
ALL_OPS = (*COMPARE_OPS, "in", "exists", "contains")
SQL_OPS = {"eq": "=", "ne": "<>", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}

# Customer columns usable as fields (all text, never personal: see profiles.Customer).
CUSTOMER_FIELDS = ("country", "jurisdiction", "status")


def score_kinds() -> tuple[str, ...]:
    """Predictive score kinds (personalization's latest score per customer), if installed."""
    from django.apps import apps

    if not apps.is_installed("segmentation.personalization"):
        return ()
    from segmentation.personalization.models import SCORE_KINDS

    return SCORE_KINDS


def score_table() -> str:
    from django.apps import apps

    return apps.get_model("personalization", "CustomerScore")._meta.db_table


def feature_types() -> dict[str, str]:
    """Feature name -> "num" or "str", from segmentation's feature catalogue."""
    from segmentation.selectors import FEATURE_COLUMNS

    return {c.name: ("num" if c.numeric else "str") for c in FEATURE_COLUMNS}


class ConditionError(ApplicationError):
    """The condition is not valid; `errors` lists "path: message" strings (no customer data)."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__(
            "segment_condition_invalid",
            "; ".join(errors[:5]) + (f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""),
            fields={"condition": errors},
        )


# --- validation --------------------------------------------------------------------------------


@dataclass
class _Checker:
    features: dict[str, str]
    errors: list[str] = field(default_factory=list)
    nodes: int = 0
    uses_features: bool = False
    uses_events: bool = False

    def err(self, path: str, message: str) -> None:
        self.errors.append(f"{path}: {message}" if path else message)

    def node(self, cond: Any, path: str, depth: int) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            if self.nodes == MAX_NODES + 1:
                self.err(path, f"too many conditions (at most {MAX_NODES})")
            return
        if depth > MAX_DEPTH:
            self.err(path, f"nested too deeply (at most {MAX_DEPTH} levels)")
            return
        if not isinstance(cond, dict):
            self.err(path, "expected an object")
            return
        for combinator in ("all", "any"):
            if combinator in cond:
                self._only(cond, {combinator}, path)
                items = cond[combinator]
                sub = _join(path, combinator)
                if not isinstance(items, list) or not items:
                    self.err(sub, "expected a non-empty list of conditions")
                    return
                for i, item in enumerate(items):
                    self.node(item, f"{sub}[{i}]", depth + 1)
                return
        if "not" in cond:
            self._only(cond, {"not"}, path)
            self.node(cond["not"], _join(path, "not"), depth + 1)
            return
        if "event" in cond:
            self.event(cond, path)
            return
        if "field" in cond:
            self.leaf(cond, path)
            return
        self.err(path, "expected one of 'all', 'any', 'not', 'field' or 'event'")

    def _only(self, cond: dict[str, Any], allowed: set[str], path: str) -> None:
        for key in cond:
            if key not in allowed:
                self.err(_join(path, _safe(key)), f"unknown key {_quote(key)}")

    def field_type(self, name: Any, path: str) -> str | None:
        """ "str", "num" or "json" (a trait: typed by the value), or None after an error."""
        if not isinstance(name, str):
            self.err(path, "expected a field name")
            return None
        if name in CUSTOMER_FIELDS:
            return "str"
        prefix, _, rest = name.partition(".")
        if prefix == "trait" and KEY_PATTERN.match(rest):
            return "json"
        if prefix == "feature" and rest in self.features:
            self.uses_features = True
            return self.features[rest]
        if prefix == "score" and rest in score_kinds():
            return "num"
        if prefix == "score":
            kinds = ", ".join(score_kinds())
            self.err(path, f"unknown score {_quote(rest)} (one of: {kinds})")
            return None
        if prefix == "trait":
            self.err(path, f"invalid trait name {_quote(rest)} (letters, digits, _; max 64)")
        else:
            self.err(path, f"unknown field {_quote(name)}")
        return None

    def leaf(self, cond: dict[str, Any], path: str) -> None:
        self._only(cond, {"field", "op", "value"}, path)
        kind = self.field_type(cond.get("field"), _join(path, "field"))
        self.comparison(cond, path, kind)

    def comparison(self, cond: dict[str, Any], path: str, kind: str | None) -> None:
        op = cond.get("op")
        op_path = _join(path, "op")
        value_path = _join(path, "value")
        if op not in ALL_OPS:
            self.err(op_path, f"unknown operator {_quote(op)}; one of {', '.join(ALL_OPS)}")
            return
        if "value" not in cond:
            self.err(value_path, "missing")
            return
        value = cond["value"]
        if kind is None:
            return
        if op == "exists":
            if not isinstance(value, bool):
                self.err(value_path, "'exists' takes true or false")
            return
        if op == "in":
            if not isinstance(value, list) or not value or len(value) > MAX_IN_ITEMS:
                self.err(value_path, f"'in' takes a list of 1 to {MAX_IN_ITEMS} values")
                return
            types = {self.value_type(v, f"{value_path}[{i}]") for i, v in enumerate(value)}
            if None in types:
                return
            if len(types) > 1:
                self.err(value_path, "'in' values must all have the same type")
                return
            value_type = types.pop()
        else:
            value_type = self.value_type(value, value_path)
            if value_type is None:
                return
        if kind != "json" and value_type != kind:
            want = "a number" if kind == "num" else "a string"
            self.err(value_path, f"wrong type: expected {want}, got {_type_name(value)}")
            return
        if op in ORDER_OPS and value_type != "num":
            self.err(op_path, f"{_quote(op)} compares numbers only")
        elif op == "contains" and value_type != "str":
            self.err(op_path, "'contains' applies to text only")
        elif op == "in" and value_type == "bool":
            self.err(op_path, "'in' takes numbers or strings")

    def value_type(self, value: Any, path: str) -> str | None:
        if isinstance(value, bool):
            return "bool"
        if isinstance(value, int | float):
            if isinstance(value, float) and not math.isfinite(value):
                self.err(path, "numbers must be finite")
                return None
            if abs(Decimal(str(value))) >= MAX_NUMBER:
                self.err(path, "number too large")
                return None
            return "num"
        if isinstance(value, str):
            if len(value) > MAX_STRING:
                self.err(path, f"text longer than {MAX_STRING} characters")
                return None
            if "\x00" in value:
                self.err(path, "text must not contain NUL characters")
                return None
            return "str"
        self.err(path, f"wrong type: expected a string, number or boolean, got {_type_name(value)}")
        return None

    def event(self, cond: dict[str, Any], path: str) -> None:
        self.uses_events = True
        self._only(cond, {"event", "where", "within", "aggregate", "of", "op", "value"}, path)
        name = cond.get("event")
        if not isinstance(name, str) or not name or len(name) > MAX_STRING or "\x00" in name:
            self.err(_join(path, "event"), f"expected an event name (1 to {MAX_STRING} characters)")
        within = cond.get("within")
        within_path = _join(path, "within")
        if not isinstance(within, dict) or len(within) != 1:
            self.err(within_path, 'expected {"days": N} or {"hours": N}')
        else:
            ((unit, amount),) = within.items()
            limit = {"days": MAX_DAYS, "hours": MAX_DAYS * 24}.get(unit)
            if limit is None:
                self.err(_join(within_path, _safe(unit)), "unit must be 'days' or 'hours'")
            elif (
                isinstance(amount, bool) or not isinstance(amount, int) or not 1 <= amount <= limit
            ):
                self.err(_join(within_path, unit), f"expected a whole number from 1 to {limit}")
        aggregate = cond.get("aggregate", "count")
        if aggregate not in ("count", "sum"):
            self.err(_join(path, "aggregate"), "must be 'count' or 'sum'")
        of = cond.get("of")
        of_path = _join(path, "of")
        if aggregate == "sum":
            if of != "amount" and not (
                isinstance(of, str) and of.startswith("property.") and KEY_PATTERN.match(of[9:])
            ):
                self.err(of_path, "'sum' needs 'of': 'amount' or 'property.<name>'")
        elif of is not None:
            self.err(of_path, "only 'sum' takes 'of'")
        op = cond.get("op")
        if op not in COMPARE_OPS:
            self.err(
                _join(path, "op"), f"unknown operator {_quote(op)}; one of {', '.join(COMPARE_OPS)}"
            )
        value = cond.get("value")
        if self.value_type(value, _join(path, "value")) not in ("num", None):
            self.err(
                _join(path, "value"), f"wrong type: expected a number, got {_type_name(value)}"
            )
        where = cond.get("where", [])
        where_path = _join(path, "where")
        if not isinstance(where, list) or len(where) > MAX_WHERE:
            self.err(where_path, f"expected a list of at most {MAX_WHERE} property conditions")
            return
        for i, item in enumerate(where):
            item_path = f"{where_path}[{i}]"
            if not isinstance(item, dict):
                self.err(item_path, "expected an object")
                continue
            self._only(item, {"property", "op", "value"}, item_path)
            key = item.get("property")
            if not isinstance(key, str) or not KEY_PATTERN.match(key):
                self.err(
                    _join(item_path, "property"),
                    f"invalid property name {_quote(key)} (letters, digits, _; max 64)",
                )
                self.comparison(item, item_path, None)
            else:
                self.comparison(item, item_path, "json")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _safe(key: Any) -> str:
    """A key as it may appear in an error path: printable, short."""
    text = str(key)
    return text if KEY_PATTERN.match(text) else "?"


def _quote(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else f"'{value}'"
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text if len(text) <= 40 else text[:37] + "...'"


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return "null" if value is None else type(value).__name__


@dataclass(frozen=True)
class ConditionInfo:
    uses_features: bool
    uses_events: bool


def condition_validate(condition: Any) -> ConditionInfo:
    """Check a condition; raises ConditionError listing every problem with its path."""
    checker = _Checker(features=feature_types())
    checker.node(condition, "", 0)
    if checker.errors:
        raise ConditionError(checker.errors)
    return ConditionInfo(uses_features=checker.uses_features, uses_events=checker.uses_events)


# --- compilation -------------------------------------------------------------------------------

P = sql.Placeholder()


def _num(value: Any) -> Decimal:
    return Decimal(str(value))


def _params(value: Any) -> Any:
    if isinstance(value, list):
        return [_num(v) if not isinstance(v, str) else v for v in value]
    if isinstance(value, bool) or isinstance(value, str):
        return value
    return _num(value)


@dataclass
class _Compiler:
    now: dt.datetime
    customer: sql.Identifier
    features: sql.Identifier
    event_table: sql.Identifier
    customer_ids: Sequence[Any] | None = None
    params: list[Any] = field(default_factory=list)
    joins: list[sql.Composable] = field(default_factory=list)
    join_params: list[Any] = field(default_factory=list)

    def node(self, cond: dict[str, Any]) -> sql.Composable:
        if "all" in cond or "any" in cond:
            joiner = sql.SQL(" AND ") if "all" in cond else sql.SQL(" OR ")
            parts = [self.node(c) for c in cond["all" if "all" in cond else "any"]]
            return sql.SQL("({})").format(joiner.join(parts))
        if "not" in cond:
            return sql.SQL("(NOT {})").format(self.node(cond["not"]))
        if "event" in cond:
            return self.event(cond)
        return self.leaf(cond)

    def leaf(self, cond: dict[str, Any]) -> sql.Composable:
        name: str = cond["field"]
        if name in CUSTOMER_FIELDS:
            column = sql.SQL("{}.{}").format(self.customer, sql.Identifier(name))
            return self.compare(column, "str", cond["op"], cond["value"], empty_is_missing=True)
        prefix, _, rest = name.partition(".")
        if prefix == "feature":
            column = sql.SQL("{}.{}").format(self.features, sql.Identifier(rest))
            kind = feature_types()[rest]
            return self.compare(column, kind, cond["op"], cond["value"], empty_is_missing=True)
        if prefix == "score":
            # The latest score of that kind, LEFT JOINed like the event aggregates (one join for a
            # full refresh, not a probe per customer); (customer, kind) is unique, so no row is
            # repeated, and no score row compares false, like a missing feature.
            alias = sql.Identifier(f"sc{len(self.joins)}")
            self.join_params.append(rest)
            self.joins.append(
                sql.SQL(
                    "LEFT JOIN {t} AS {a} ON {a}.customer_id = {c}.id AND {a}.kind = {p}"
                ).format(t=sql.Identifier(score_table()), a=alias, c=self.customer, p=P)
            )
            score = sql.SQL("{}.{}").format(alias, sql.Identifier("score"))
            return self.compare(score, "num", cond["op"], cond["value"], empty_is_missing=False)
        attributes = sql.SQL("{}.{}").format(self.customer, sql.Identifier("attributes"))
        return self.json_compare(attributes, rest, cond["op"], cond["value"])

    def json_compare(
        self, document: sql.Composable, key: str, op: str, value: Any
    ) -> sql.Composable:
        """A comparison on one key of a JSON object column; the key is a parameter."""
        if op == "exists":
            self.params.append(key)
            present = sql.SQL("(COALESCE(jsonb_typeof({} -> {}), 'null') <> 'null')").format(
                document, P
            )
            return present if value else sql.SQL("(NOT {})").format(present)
        sample = value[0] if op == "in" else value
        if isinstance(sample, bool):
            json_type, cast, kind = "boolean", sql.SQL("::boolean"), "bool"
        elif isinstance(sample, str):
            json_type, cast, kind = "string", sql.SQL(""), "str"
        else:
            json_type, cast, kind = "number", sql.SQL("::numeric"), "num"
        self.params.extend([key, json_type, key])
        typed = sql.SQL(
            "(CASE WHEN jsonb_typeof({doc} -> {p}) = {p} THEN ({doc} ->> {p}){cast} END)"
        )
        expression = typed.format(doc=document, p=P, cast=cast)
        return self.compare(expression, kind, op, value, empty_is_missing=False)

    def compare(
        self, expression: sql.Composable, kind: str, op: str, value: Any, *, empty_is_missing: bool
    ) -> sql.Composable:
        if op == "exists":
            if kind == "str" and empty_is_missing:
                present = sql.SQL("(COALESCE({}, '') <> '')").format(expression)
            else:
                present = sql.SQL("({} IS NOT NULL)").format(expression)
            return present if value else sql.SQL("(NOT {})").format(present)
        if kind == "num" and empty_is_missing:
            expression = sql.SQL("({})::numeric").format(expression)
        if op == "in":
            self.params.append(_params(value))
            array = sql.SQL("::numeric[]" if kind == "num" else "::text[]")
            test = sql.SQL("{} = ANY({}{})").format(expression, P, array)
        elif op == "contains":
            self.params.append(value)
            test = sql.SQL("strpos({}, {}) > 0").format(expression, P)
        else:
            self.params.append(_params(value))
            test = sql.SQL("{} {} {}").format(expression, sql.SQL(SQL_OPS[op]), P)
        return sql.SQL("COALESCE({}, false)").format(test)

    def event(self, cond: dict[str, Any]) -> sql.Composable:
        """An event aggregate: one GROUP BY over the window's events, LEFT JOINed on the
        customer (one hash aggregate for a full refresh, instead of a probe per customer), and
        COALESCE(value, 0) compared in the WHERE. With `customer_ids` the aggregate only reads
        those customers' events (real-time re-checks)."""
        ((unit, amount),) = cond["within"].items()
        since = self.now - dt.timedelta(**{unit: amount})
        events = sql.Identifier("e")
        alias = sql.Identifier(f"ev{len(self.joins)}")
        properties = sql.SQL("{}.{}").format(events, sql.Identifier("properties"))
        where_params, self.params = self.params, []  # the join's parameters come first
        aggregate = cond.get("aggregate", "count")
        if aggregate == "count":
            measure = sql.SQL("count(*)")
        elif cond["of"] == "amount":
            measure = sql.SQL("sum({}.{})").format(events, sql.Identifier("amount"))
        else:
            self.params.extend([cond["of"][9:], cond["of"][9:]])
            measure = sql.SQL(
                "sum(CASE WHEN jsonb_typeof({doc} -> {p}) = 'number' "
                "THEN ({doc} ->> {p})::numeric END)"
            ).format(doc=properties, p=P)
        self.params.extend([cond["event"], since])
        filters = [
            sql.SQL("{}.{} = {}").format(events, sql.Identifier("name"), P),
            sql.SQL("{}.{} >= {}").format(events, sql.Identifier("timestamp"), P),
        ]
        if self.customer_ids is not None:
            self.params.append(list(self.customer_ids))
            filters.append(
                sql.SQL("{}.{} = ANY({})").format(events, sql.Identifier("customer_id"), P)
            )
        for item in cond.get("where", []):
            filters.append(
                self.json_compare(properties, item["property"], item["op"], item["value"])
            )
        self.join_params.extend(self.params)
        self.params = where_params
        customer_id = sql.Identifier("customer_id")
        self.joins.append(
            sql.SQL(
                "LEFT JOIN (SELECT {e}.{cid}, {measure} AS v FROM {table} AS {e} WHERE {filters} "
                "GROUP BY {e}.{cid}) AS {alias} ON {alias}.{cid} = {c}.{id}"
            ).format(
                e=events,
                cid=customer_id,
                measure=measure,
                table=self.event_table,
                filters=sql.SQL(" AND ").join(filters),
                alias=alias,
                c=self.customer,
                id=sql.Identifier("id"),
            )
        )
        self.params.append(_num(cond["value"]))
        return sql.SQL("(COALESCE({}.v, 0) {} {})").format(alias, sql.SQL(SQL_OPS[cond["op"]]), P)


@dataclass(frozen=True)
class CompiledCondition:
    """JOINs (event aggregates) and a WHERE expression over `profiles_customer AS c` (and
    `features AS f` when used). In the statement the joins, and their parameters, come first."""

    joins: sql.Composable
    join_params: list[Any]
    where: sql.Composable
    params: list[Any]
    uses_features: bool


def condition_compile(
    condition: Any, *, now: dt.datetime, customer_ids: Sequence[Any] | None = None
) -> CompiledCondition:
    """Validate and compile; the expression reads aliases `c` (customer) and `f` (features).
    With `customer_ids`, event aggregates read only those customers' events."""
    from cdp.ingest.models import Event

    info = condition_validate(condition)
    compiler = _Compiler(
        now=now,
        customer=sql.Identifier("c"),
        features=sql.Identifier("f"),
        event_table=sql.Identifier(Event._meta.db_table),
        customer_ids=customer_ids,
    )
    where = compiler.node(condition)
    return CompiledCondition(
        joins=sql.SQL(" ").join(compiler.joins),
        join_params=compiler.join_params,
        where=where,
        params=compiler.params,
        uses_features=info.uses_features,
    )
