"""Reads of segments: the member query, previews, history and the size chart.

`segment_members_sql` is the one place that turns a segment into SQL: its condition (compiled by
`conditions`), its cluster reference, and always the consent gate for its purpose
(`consent.selectors.customers_allowed_for`), as one statement with parameters.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import Q, QuerySet
from django.utils import timezone
from psycopg import sql

from cdp.profiles.models import Customer, Identity, IdentityKind
from consent.selectors import customers_allowed_for
from segmentation.segments.conditions import condition_compile
from segmentation.segments.models import Segment, SegmentMembership, SegmentRefresh


@dataclass(frozen=True)
class SegmentRule:
    """What decides membership, independent of a saved Segment (previews use it unsaved)."""

    purpose_code: str
    condition: Any = None
    cluster_run_id: uuid.UUID | None = None
    cluster: int | None = None

    @classmethod
    def of(cls, segment: Segment) -> SegmentRule:
        return cls(
            purpose_code=segment.purpose_id,
            condition=segment.condition,
            cluster_run_id=segment.cluster_run_id,
            cluster=segment.cluster,
        )


def segment_members_sql(
    rule: SegmentRule,
    *,
    now: dt.datetime | None = None,
    customer_ids: Sequence[uuid.UUID] | None = None,
) -> tuple[sql.Composed, list[Any]]:
    """SELECT c.id of the members (optionally only among `customer_ids`): statement and params.

    Raises ConditionError when the condition is invalid.
    """
    from segmentation.models import ClusterAssignment, CustomerFeatures

    now = now or timezone.now()
    base = Customer.objects.all()
    if customer_ids is not None:
        base = base.filter(id__in=list(customer_ids))
    consent_sql, consent_params = (
        customers_allowed_for(rule.purpose_code, base, now=now).values("id").query.sql_with_params()
    )
    c = sql.Identifier("c")
    joins: list[sql.Composable] = []
    where: list[sql.Composable] = [
        sql.SQL("{}.{} IN ({})").format(c, sql.Identifier("id"), sql.SQL(consent_sql))
    ]
    join_params: list[Any] = []
    params: list[Any] = list(consent_params)
    if rule.condition is not None:
        compiled = condition_compile(rule.condition, now=now, customer_ids=customer_ids)
        if compiled.uses_features:
            joins.append(
                sql.SQL("LEFT JOIN {} AS f ON f.{} = c.{}").format(
                    sql.Identifier(CustomerFeatures._meta.db_table),
                    sql.Identifier("customer_id"),
                    sql.Identifier("id"),
                )
            )
        joins.append(compiled.joins)
        join_params.extend(compiled.join_params)
        where.append(compiled.where)
        params.extend(compiled.params)
    if rule.cluster_run_id is not None:
        where.append(
            sql.SQL("c.id IN (SELECT {} FROM {} WHERE {} = %s AND {} = %s)").format(
                sql.Identifier("customer_id"),
                sql.Identifier(ClusterAssignment._meta.db_table),
                sql.Identifier("run_id"),
                sql.Identifier("cluster"),
            )
        )
        params.extend([rule.cluster_run_id, rule.cluster])
    query = sql.SQL("SELECT c.id FROM {} AS c {} WHERE {}").format(
        sql.Identifier(Customer._meta.db_table),
        sql.SQL(" ").join(joins),
        sql.SQL(" AND ").join(where),
    )
    return query, [*join_params, *params]


def sql_render(query: sql.Composable) -> str:
    """The statement's text. Only identifiers and fixed SQL are rendered; values stay `%s`."""
    connection.ensure_connection()
    return query.as_string(connection.connection)


def segment_member_ids(rule: SegmentRule, *, now: dt.datetime | None = None) -> set[uuid.UUID]:
    query, params = segment_members_sql(rule, now=now)
    with connection.cursor() as cursor:
        cursor.execute(sql_render(query), params)
        return {row[0] for row in cursor.fetchall()}


def segment_preview_count(rule: SegmentRule, *, now: dt.datetime | None = None) -> int:
    """How many customers the rule would hold now (ConditionError if invalid). One query."""
    query, params = segment_members_sql(rule, now=now)
    count = sql.SQL("SELECT count(*) FROM ({}) AS members").format(query)
    with connection.cursor() as cursor:
        cursor.execute(sql_render(count), params)
        return int(cursor.fetchone()[0])


def segment_members_on(*, segment: Segment, at: dt.datetime) -> QuerySet[SegmentMembership]:
    """Who was in `segment` at time `at`: stays that had begun and not yet ended."""
    return SegmentMembership.objects.filter(segment=segment, entered_at__lte=at).filter(
        Q(left_at__isnull=True) | Q(left_at__gt=at)
    )


def segment_members_current(*, segment: Segment) -> QuerySet[SegmentMembership]:
    return SegmentMembership.objects.filter(segment=segment, left_at__isnull=True)


def segment_user_ids(*, customer_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[str]]:
    """The user ids (partner-issued, pseudonymous) of a page of customers: one query."""
    found: dict[uuid.UUID, list[str]] = {}
    identities = Identity.objects.filter(
        customer_id__in=list(customer_ids), kind=IdentityKind.USER_ID
    ).order_by("created_at")
    for identity in identities:
        found.setdefault(identity.customer_id, []).append(identity.value)
    return found


def segment_size_series(*, segment: Segment, limit: int = 60) -> list[tuple[dt.datetime, int]]:
    """(time, size) after each of the last `limit` successful refreshes, oldest first."""
    rows = (
        SegmentRefresh.objects.filter(segment=segment, status="succeeded")
        .order_by("-started_at")
        .values_list("finished_at", "size")[:limit]
    )
    return [(at, size) for at, size in reversed(list(rows)) if at is not None]


def segments_due(*, now: dt.datetime | None = None) -> QuerySet[Segment]:
    """Enabled segments with a schedule whose next refresh time has come (or was never set)."""
    now = now or timezone.now()
    return Segment.objects.filter(enabled=True, refresh_interval_minutes__gt=0).filter(
        Q(next_refresh_at__isnull=True) | Q(next_refresh_at__lte=now)
    )
