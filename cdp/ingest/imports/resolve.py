"""Identity resolution for a chunk of import rows, set-based, with a configurable rule order.

Rules, strongest first by default: `customer_id` (the source's own id, an external id scoped to
the source), `email`, `phone`; optionally `content` (the row apart from its identifier columns is
identical to an earlier row of the same source: the same person enrolled twice). One query reads
the owners of every identifier of the chunk and one the owners of the content fingerprints; the
rest is decided in memory, row by row, in file order:

- the row belongs to the profile of its strongest identifier that has an owner, else to a new
  profile (rows later in the chunk see the profiles earlier rows created);
- another profile owning a weaker identifier of the row is merged into it, with the rule that
  matched recorded (`shared_identifier:email`...), unless both carry different ids of this same
  source system (two customers of one source are never merged automatically);
- identifiers of the row that nobody owns are linked to its profile.

The writes reuse `cdp.profiles.resolution` (profile creation with data keys, merges with
survivorship and unmerge records).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from cdp.db import raw_cursor, time_ordered_ids
from cdp.profiles.models import CustomerStatus, IdentityKind
from cdp.profiles.resolution import Ident, PlannedMerge

RULES = ("customer_id", "email", "phone", "content")
DEFAULT_RULES = ("customer_id", "email", "phone")
KIND_OF_RULE = {
    "customer_id": IdentityKind.EXTERNAL_ID,
    "email": IdentityKind.EMAIL,
    "phone": IdentityKind.PHONE,
    "anonymous": IdentityKind.ANONYMOUS_ID,
}
MAX_LINKS = 100


def _new_ids() -> Iterator[uuid.UUID]:
    """Ids for new profiles: UUIDv7s as `Customer`'s default makes them (time-ordered, see
    there), a thousand at a time from one read of the system's generator."""
    while True:
        for raw in time_ordered_ids(1024):
            yield uuid.UUID(bytes=raw)


class RowIdent:
    """An identifier of a row, with the rule it answers to; `key` is read a dozen times per row
    by the planner, so it is built once (a plain slotted class: one per identifier per row)."""

    __slots__ = ("ident", "key", "namespace", "rule")

    def __init__(self, rule: str, namespace: str, ident: Ident) -> None:
        self.rule = rule
        self.namespace = namespace
        self.ident = ident
        self.key: tuple[str, str, bytes] = (ident.kind, namespace, ident.index)

    def __repr__(self) -> str:
        return f"RowIdent({self.rule!r}, {self.namespace!r}, {self.ident.kind!r})"


@dataclass
class RowClaim:
    key: int
    idents: list[RowIdent]  # in rule order
    content: bytes | None = None
    country: str = ""


@dataclass
class ImportPlan:
    customer_of: dict[int, uuid.UUID]
    matched_by: dict[int, str | None]  # None: the row created its profile
    new_customers: dict[uuid.UUID, str]  # id -> country
    new_identities: list[tuple[RowIdent, uuid.UUID]]
    merges: list[PlannedMerge]
    blocked_rows: dict[int, str] = field(default_factory=dict)  # row -> reason
    refused_merges: int = 0


_OWNERS = """
SELECT w.kind, w.namespace, w.value_index, i.customer_id, c.status, c.merged_into_id
FROM unnest(%b::varchar[], %b::varchar[], %b::bytea[]) AS w(kind, namespace, value_index)
CROSS JOIN LATERAL (
    SELECT customer_id FROM profiles_identity
    WHERE kind = w.kind AND namespace = w.namespace AND value_index = w.value_index LIMIT 1
) AS i
JOIN profiles_customer c ON c.id = i.customer_id
"""
_CONTENT_OWNERS = """
SELECT DISTINCT ON (s.content_index) s.content_index, s.customer_id, c.status, c.merged_into_id
FROM profiles_sourcerecord s JOIN profiles_customer c ON c.id = s.customer_id
WHERE s.source_name = %b AND s.content_index = ANY(%b::bytea[])
ORDER BY s.content_index, s.created_at
"""
_NAMESPACES = """
SELECT customer_id, array_agg(DISTINCT namespace) FROM profiles_identity
WHERE customer_id = ANY(%b::uuid[]) AND kind = 'external_id' GROUP BY customer_id
"""


class _Planner:
    def __init__(self, source_name: str) -> None:
        self.source_name = source_name
        self.owner: dict[tuple[str, str, bytes], uuid.UUID] = {}
        self.status: dict[uuid.UUID, str] = {}
        self.stored: set[uuid.UUID] = set()
        self.namespaces: dict[uuid.UUID, set[str]] = {}
        self.links: dict[uuid.UUID, int] = {}
        self.parent: dict[uuid.UUID, uuid.UUID] = {}
        self.country: dict[uuid.UUID, str] = {}
        self.new_identities: dict[tuple[str, str, bytes], tuple[RowIdent, uuid.UUID]] = {}
        self.merges: list[PlannedMerge] = []
        self.refused_merges = 0

    def find(self, cid: uuid.UUID) -> uuid.UUID:
        while cid in self.parent:
            cid = self.parent[cid]
        return cid

    def owner_of(self, key: tuple[str, str, bytes]) -> uuid.UUID | None:
        cid = self.owner.get(key)
        return None if cid is None else self.find(cid)

    def merge(self, loser: uuid.UUID, survivor: uuid.UUID, rule: str) -> None:
        if loser == survivor:
            return
        if self.status.get(loser, CustomerStatus.ACTIVE) != CustomerStatus.ACTIVE:
            self.refused_merges += 1
            return
        if self.namespaces.get(loser, set()) & self.namespaces.get(survivor, set()):
            self.refused_merges += 1  # two ids of one source system: two customers
            return
        if loser in self.stored and survivor not in self.stored:
            loser, survivor = survivor, loser
        self.parent[loser] = survivor
        self.namespaces[survivor] = self.namespaces.get(survivor, set()) | self.namespaces.pop(
            loser, set()
        )
        self.country[survivor] = self.country.get(survivor) or self.country.get(loser, "")
        if loser in self.stored and survivor in self.stored:
            self.merges.append(PlannedMerge(loser, survivor, f"shared_identifier:{rule}"[:32]))

    def link(self, row_ident: RowIdent, cid: uuid.UUID) -> None:
        if self.links.get(cid, 0) >= MAX_LINKS:
            return
        self.links[cid] = self.links.get(cid, 0) + 1
        self.owner[row_ident.key] = cid
        self.new_identities[row_ident.key] = (row_ident, cid)
        if row_ident.ident.kind == IdentityKind.EXTERNAL_ID:
            self.namespaces.setdefault(cid, set()).add(row_ident.namespace)


def _content_key(source_name: str, content: bytes) -> tuple[str, str, bytes]:
    return ("content", source_name, content)


def import_resolution_plan(
    claims: Sequence[RowClaim], *, source_name: str, rules: Sequence[str]
) -> ImportPlan:
    """Decide every row's profile: two queries (three when profiles are found) per chunk."""
    planner = _Planner(source_name)
    wanted = {ri.key for claim in claims for ri in claim.idents}
    found: set[uuid.UUID] = set()

    def _owner_row(cid: uuid.UUID, status: str, into: uuid.UUID | None) -> uuid.UUID:
        if status == CustomerStatus.MERGED and into is not None:
            cid, status = into, CustomerStatus.ACTIVE
        planner.status[cid] = status
        planner.stored.add(cid)
        found.add(cid)
        return cid

    with raw_cursor() as cursor:
        if wanted:
            kinds, namespaces, indexes = zip(*wanted, strict=True)
            cursor.execute(_OWNERS, [list(kinds), list(namespaces), list(indexes)])
            for kind, namespace, index, cid, status, into in cursor.fetchall():
                planner.owner[(kind, namespace, bytes(index))] = _owner_row(cid, status, into)
        contents = {c.content for c in claims if c.content is not None}
        if contents and "content" in rules:
            cursor.execute(_CONTENT_OWNERS, [source_name, list(contents)])
            for index, cid, status, into in cursor.fetchall():
                key = _content_key(source_name, bytes(index))
                planner.owner[key] = _owner_row(cid, status, into)
        if found:
            cursor.execute(_NAMESPACES, [list(found)])
            for cid, spaces in cursor.fetchall():
                planner.namespaces[cid] = set(spaces)

    customer_of: dict[int, uuid.UUID] = {}
    matched_by: dict[int, str | None] = {}
    blocked: dict[int, str] = {}
    order = {rule: n for n, rule in enumerate(rules)}
    fresh_ids = _new_ids()
    active = str(CustomerStatus.ACTIVE)  # a plain str: compared once per candidate
    for claim in claims:
        candidates: list[tuple[str, uuid.UUID]] = []
        for ri in sorted(claim.idents, key=lambda r: order.get(r.rule, len(order))):
            if ri.rule in order or ri.rule == "anonymous":
                cid = planner.owner_of(ri.key)
                if cid is not None:
                    candidates.append((ri.rule, cid))
        if claim.content is not None and "content" in order:
            cid = planner.owner_of(_content_key(source_name, claim.content))
            if cid is not None:
                candidates.append(("content", cid))
                candidates.sort(key=lambda c: order.get(c[0], len(order)))
        if candidates and any(planner.status.get(cid, active) != active for _, cid in candidates):
            blocked[claim.key] = "the matching profile is restricted or erased"
            continue
        if candidates:
            rule, primary = candidates[0]
            matched_by[claim.key] = rule
            for other_rule, other in candidates[1:]:
                planner.merge(planner.find(other), planner.find(primary), other_rule)
            primary = planner.find(primary)
        else:
            primary = next(fresh_ids)
            planner.country[primary] = claim.country
            matched_by[claim.key] = None
        owner = planner.owner
        for ri in claim.idents:
            if ri.key not in owner:  # owner_of(...) is None, without following merges
                planner.link(ri, primary)
        if claim.content is not None and "content" in order:
            planner.owner.setdefault(_content_key(source_name, claim.content), primary)
        if claim.country and not planner.country.get(primary):
            planner.country[primary] = claim.country
        customer_of[claim.key] = primary

    # Without merges in the chunk every id is its own root: find() is skipped (five calls per
    # row, each hashing a UUID in Python).
    find = planner.find if planner.parent else None
    if find is not None:
        customer_of = {key: find(cid) for key, cid in customer_of.items()}
    stored = planner.stored
    new_ids = set(customer_of.values()) - stored if stored else set(customer_of.values())
    new_identities = [
        (ri, cid if find is None else find(cid))
        for ri, cid in planner.new_identities.values()
        if ri.key[0] != "content"
    ]
    new_ids |= {cid for _, cid in new_identities} - stored
    country = planner.country
    return ImportPlan(
        customer_of=customer_of,
        matched_by=matched_by,
        new_customers={cid: country.get(cid, "") for cid in new_ids},
        new_identities=new_identities,
        merges=planner.merges,
        blocked_rows=blocked,
        refused_merges=planner.refused_merges,
    )
