"""Identity resolution for a whole batch at once, profile creation in bulk, merges and unmerge.

`resolution_plan` reads the owners of every identifier of a batch with one query (and the
identifier counts of the profiles found with a second, only when some message needs a link or
merge decision), then decides in memory, message by message, which profile each message
belongs to, which identifiers to link and which profiles to merge. `resolution_apply`
writes that plan set-based inside the caller's transaction. Merge protection (against the
over-merging users of other CDPs complain about):

- blocked identifier values (`null`, `undefined`, `0`, placeholder e-mails; configurable through
  `CDP_BLOCKED_IDENTIFIERS`) never link or create anything;
- a profile holds at most `MAX_IDENTIFIERS` of each kind; a link or merge past that is refused;
- two profiles that carry different user ids are never merged automatically: only an explicit
  `alias` does that;
- restricted and erased profiles are never merged;
- every merge of two stored profiles is kept in `Merge`, and `customer_unmerge` restores both.

Identifier values are encrypted under their profile's data key, with associated data that binds
them to it, so moving an identity between profiles re-encrypts it under the target's key.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from cdp.audit.services import audit_record
from cdp.crypto.errors import NormalizationError
from cdp.crypto.subject_keys import subject_keys_create, subject_keys_load
from cdp.db import raw_cursor, time_ordered_uuid
from cdp.profiles.jurisdiction import jurisdiction_for
from cdp.profiles.models import (
    Customer,
    CustomerStatus,
    Identity,
    IdentityKind,
    Merge,
    MergeRule,
)
from cdp.profiles.services import identifier_index

# Resolution order: the strongest identifier decides which profile a message belongs to.
KIND_ORDER = (
    IdentityKind.USER_ID,
    IdentityKind.EMAIL,
    IdentityKind.PHONE,
    IdentityKind.ANONYMOUS_ID,
)
MAX_IDENTIFIERS = {
    IdentityKind.USER_ID: 1,
    IdentityKind.EMAIL: 5,
    IdentityKind.PHONE: 5,
    IdentityKind.ANONYMOUS_ID: 100,
}
DEFAULT_BLOCKED = {
    IdentityKind.USER_ID: {
        "null",
        "undefined",
        "none",
        "nil",
        "nan",
        "0",
        "-1",
        "anonymous",
        "unknown",
        "guest",
        "[object object]",
        "test",
        "user",
        "true",
        "false",
    },
    IdentityKind.ANONYMOUS_ID: {
        "null",
        "undefined",
        "none",
        "nil",
        "nan",
        "0",
        "-1",
        "00000000-0000-0000-0000-000000000000",
        "[object object]",
    },
    IdentityKind.EMAIL: {
        "test@test.com",
        "test@example.com",
        "email@example.com",
        "user@example.com",
        "example@example.com",
        "a@a.com",
        "none@none.com",
        "null@null.com",
        "noemail@noemail.com",
        "no@email.com",
        "asdf@asdf.com",
        "abc@abc.com",
    },
    IdentityKind.PHONE: {"+10000000000", "+11111111111", "+15555555555"},
}
BLOCKED_EMAIL_LOCAL_PARTS = {"noreply", "no-reply", "donotreply", "do-not-reply", "test"}
PROFILE_FIELDS = ("email", "phone", "first_name", "last_name", "birth_date", "address")


def blocked_values() -> dict[str, set[str]]:
    """Defaults plus `CDP_BLOCKED_IDENTIFIERS` (setting or environment): `kind:value,...`."""
    blocked = {kind: set(values) for kind, values in DEFAULT_BLOCKED.items()}
    extra = getattr(settings, "CDP_BLOCKED_IDENTIFIERS", None) or os.environ.get(
        "CDP_BLOCKED_IDENTIFIERS", ""
    )
    items = extra if isinstance(extra, list | tuple) else str(extra).split(",")
    for item in items:
        kind, sep, value = str(item).strip().partition(":")
        if sep and value:
            blocked.setdefault(kind, set()).add(value.strip().lower())
    return blocked


def is_blocked(kind: str, normalized: str, blocked: dict[str, set[str]]) -> bool:
    lowered = normalized.lower()
    if lowered in blocked.get(kind, ()):
        return True
    if kind == IdentityKind.EMAIL:
        return lowered.partition("@")[0] in BLOCKED_EMAIL_LOCAL_PARTS
    return False


@dataclass(frozen=True)
class Ident:
    kind: str
    normalized: str
    index: bytes


def identifier(kind: str, value: Any, blocked: dict[str, set[str]]) -> Ident | None:
    """The normalised, indexed identifier, or None when it is malformed or blocked."""
    if value is None or isinstance(value, bool) or not isinstance(value, str | int):
        return None
    try:
        normalized, index = identifier_index(kind, str(value))
    except NormalizationError:
        return None
    if is_blocked(kind, normalized, blocked):
        return None
    return Ident(kind, normalized, index)


@dataclass
class Claim:
    """The identifiers one message carries. `previous` is an alias call's previousId."""

    key: int
    idents: list[Ident]
    previous: list[Ident] = field(default_factory=list)  # as user id, then as anonymous id
    country: str = ""


@dataclass
class _Profile:
    id: uuid.UUID
    stored: bool
    status: str = CustomerStatus.ACTIVE
    user_ids: set[bytes] = field(default_factory=set)
    counts: Counter[str] = field(default_factory=Counter)
    country: str = ""


@dataclass
class PlannedMerge:
    loser: uuid.UUID
    survivor: uuid.UUID
    rule: str


@dataclass
class Plan:
    customer_of: dict[int, uuid.UUID]
    new_customers: dict[uuid.UUID, str]  # id -> country
    new_identities: list[tuple[Ident, uuid.UUID]]
    merges: list[PlannedMerge]
    refused_links: int = 0
    refused_merges: int = 0


class _Planner:
    def __init__(self, owners: dict[bytes, uuid.UUID], profiles: dict[uuid.UUID, _Profile]):
        self.owners = owners
        self.profiles = profiles
        self.parent: dict[uuid.UUID, uuid.UUID] = {}
        self.new_identities: dict[bytes, tuple[Ident, uuid.UUID]] = {}
        self.merges: list[PlannedMerge] = []
        self.refused_links = 0
        self.refused_merges = 0

    def find(self, cid: uuid.UUID) -> uuid.UUID:
        while cid in self.parent:
            cid = self.parent[cid]
        return cid

    def owner(self, ident: Ident) -> uuid.UUID | None:
        cid = self.owners.get(ident.index)
        return None if cid is None else self.find(cid)

    def new_profile(self, country: str) -> uuid.UUID:
        cid = time_ordered_uuid()
        self.profiles[cid] = _Profile(cid, stored=False, country=country)
        return cid

    def usable(self, cid: uuid.UUID) -> bool:
        return self.profiles[cid].status == CustomerStatus.ACTIVE

    def compatible(self, a: uuid.UUID, b: uuid.UUID) -> bool:
        pa, pb = self.profiles[a], self.profiles[b]
        if pa.user_ids and pb.user_ids and pa.user_ids != pb.user_ids:
            return False
        total = pa.counts + pb.counts
        return all(total[kind] <= limit for kind, limit in MAX_IDENTIFIERS.items())

    def merge(self, loser: uuid.UUID, survivor: uuid.UUID, rule: str, *, explicit: bool) -> bool:
        if loser == survivor:
            return True
        if not (self.usable(loser) and self.usable(survivor)):
            self.refused_merges += 1
            return False
        if not explicit and not self.compatible(loser, survivor):
            self.refused_merges += 1
            return False
        pl, ps = self.profiles[loser], self.profiles[survivor]
        # Keep the stored profile (an unstored one simply never gets created); then the one
        # that carries a user id.
        if (not ps.stored and pl.stored) or (
            ps.stored == pl.stored and pl.user_ids and not ps.user_ids
        ):
            loser, survivor, pl, ps = survivor, loser, ps, pl
        self.parent[loser] = survivor
        ps.user_ids |= pl.user_ids
        ps.counts += pl.counts
        ps.country = ps.country or pl.country
        if pl.stored and ps.stored:
            self.merges.append(PlannedMerge(loser, survivor, rule))
        return True

    def link(self, ident: Ident, cid: uuid.UUID) -> None:
        profile = self.profiles[cid]
        if ident.kind == IdentityKind.USER_ID and profile.user_ids - {ident.index}:
            self.refused_links += 1
            return
        if profile.counts[ident.kind] >= MAX_IDENTIFIERS.get(ident.kind, 100):
            self.refused_links += 1
            return
        self.owners[ident.index] = cid
        self.new_identities[ident.index] = (ident, cid)
        profile.counts[ident.kind] += 1
        if ident.kind == IdentityKind.USER_ID:
            profile.user_ids.add(ident.index)

    def place(self, claim: Claim) -> uuid.UUID:
        by_kind = {ident.kind: ident for ident in claim.idents}
        user = by_kind.get(IdentityKind.USER_ID)
        found = [
            (ident, cid)
            for ident in sorted(claim.idents, key=lambda i: KIND_ORDER.index(i.kind))
            if (cid := self.owner(ident)) is not None
        ]
        primary: uuid.UUID | None = None
        if user is not None and (owner := self.owner(user)) is not None:
            primary = owner
        else:
            candidates = [cid for _, cid in found if self.usable(cid)]
            if user is not None:
                candidates = [c for c in candidates if not self.profiles[c].user_ids]
            primary = candidates[0] if candidates else None
        if primary is None:
            primary = self.new_profile(claim.country)
        if user is not None and self.owner(user) is None:
            # The user id first, so that the merge checks below see it on the primary.
            self.link(user, primary)
        for _, other in found:
            other = self.find(other)
            if other != self.find(primary):
                rule = MergeRule.IDENTIFY if user is not None else MergeRule.SHARED_IDENTIFIER
                self.merge(other, self.find(primary), rule, explicit=False)
        primary = self.find(primary)
        if claim.previous:
            previous_owner = next(
                (cid for ident in claim.previous if (cid := self.owner(ident)) is not None), None
            )
            if previous_owner is None:
                # An unknown previous id: remember it as an anonymous id of this profile.
                self.link(claim.previous[-1], primary)
            else:
                self.merge(previous_owner, primary, MergeRule.ALIAS, explicit=True)
            primary = self.find(primary)
        for ident in claim.idents:
            if self.owner(ident) is None:
                self.link(ident, primary)
        return primary


_OWNERS = """
SELECT i.value_index, i.customer_id, c.status, c.merged_into_id
FROM unnest(%b::varchar[], %b::bytea[]) AS w(kind, value_index)
-- LIMIT 1 keeps this a per-identifier probe of the unique index (the planner would otherwise
-- hash-join a full scan of the table).
CROSS JOIN LATERAL (
    SELECT customer_id, value_index FROM profiles_identity
    WHERE kind = w.kind AND namespace = '' AND value_index = w.value_index LIMIT 1
) AS i
JOIN profiles_customer c ON c.id = i.customer_id
"""

# Per profile (an aggregate in LATERAL is never flattened: index probes again).
_COUNTS = """
SELECT f.customer_id, cu.status, x.kind, x.n, x.user_ids
FROM unnest(%b::uuid[]) AS f(customer_id)
CROSS JOIN LATERAL (
    SELECT kind, count(*) AS n,
           array_agg(value_index) FILTER (WHERE kind = 'user_id') AS user_ids
    FROM profiles_identity WHERE customer_id = f.customer_id GROUP BY kind
) AS x
JOIN profiles_customer cu ON cu.id = f.customer_id
"""


def _settled_profile(
    claim: Claim, owners: dict[bytes, uuid.UUID], status: dict[uuid.UUID, str]
) -> uuid.UUID | None:
    """The one active profile that owns every identifier of `claim`, if there is one (then
    the planner would neither link nor merge anything for it)."""
    if claim.previous or not claim.idents:
        return None
    found = None
    for ident in claim.idents:
        cid = owners.get(ident.index)
        if cid is None or (found is not None and cid != found):
            return None
        found = cid
    if found is None or status[found] != CustomerStatus.ACTIVE:
        return None
    return found


def _settled(
    claims: Sequence[Claim], owners: dict[bytes, uuid.UUID], status: dict[uuid.UUID, str]
) -> dict[int, uuid.UUID] | None:
    """Every claim's profile when all claims are settled; None when any needs the planner."""
    placed: dict[int, uuid.UUID] = {}
    for claim in claims:
        cid = _settled_profile(claim, owners, status)
        if cid is None:
            return None
        placed[claim.key] = cid
    return placed


def resolution_plan(claims: Sequence[Claim]) -> Plan:
    """Decide, for every claim, its profile: one query in the steady state, two at most."""
    # (kind, index) pairs, so the lookup uses the unique (kind, namespace, value_index) index.
    wanted = {(ident.kind, ident.index) for c in claims for ident in (*c.idents, *c.previous)}
    owners: dict[bytes, uuid.UUID] = {}
    status: dict[uuid.UUID, str] = {}
    if wanted:
        # Raw SQL with server-side binding, because client-side quoting of a thousand bytea
        # values costs more than the query.
        with raw_cursor() as cursor:
            kinds, indexes = zip(*wanted, strict=True)
            cursor.execute(_OWNERS, [list(kinds), list(indexes)])
            rows = cursor.fetchall()
        for index, cid, state, into in rows:
            if state == CustomerStatus.MERGED and into is not None:
                # Normally moved with the merge; follow the pointer if one was left behind.
                cid, state = into, CustomerStatus.ACTIVE
            owners[bytes(index)] = cid
            status.setdefault(cid, state)
    settled = _settled(claims, owners, status)
    if settled is not None:
        # Every claim names only identifiers of one active profile each: nothing to link or
        # merge, so identifier counts are never consulted (the steady state of known users).
        return Plan(customer_of=settled, new_customers={}, new_identities=[], merges=[])
    # Counts and user ids only for the profiles that claims needing a decision found: a
    # settled claim neither links nor merges, and the profiles it names are not reachable
    # from another claim's links or merges without being found by that claim.
    involved = {
        cid
        for claim in claims
        if _settled_profile(claim, owners, status) is None
        for ident in (*claim.idents, *claim.previous)
        if (cid := owners.get(ident.index)) is not None
    }
    profiles = {cid: _Profile(cid, stored=True, status=state) for cid, state in status.items()}
    if involved:
        with raw_cursor() as cursor:
            cursor.execute(_COUNTS, [list(involved)])
            rows = cursor.fetchall()
        for cid, state, kind, count, user_ids in rows:
            profile = profiles.get(cid)
            if profile is None:
                profile = profiles[cid] = _Profile(cid, stored=True, status=state)
            profile.counts[kind] = count
            if user_ids:
                profile.user_ids.update(bytes(u) for u in user_ids)
    planner = _Planner(owners, profiles)
    placed = {claim.key: planner.place(claim) for claim in claims}
    customer_of = {key: planner.find(cid) for key, cid in placed.items()}
    survivors = set(customer_of.values())
    new_customers = {
        cid: profiles[cid].country
        for cid in survivors | {planner.find(c) for _, c in planner.new_identities.values()}
        if not profiles[cid].stored
    }
    return Plan(
        customer_of=customer_of,
        new_customers=new_customers,
        new_identities=[
            (ident, planner.find(cid)) for ident, cid in planner.new_identities.values()
        ],
        merges=planner.merges,
        refused_links=planner.refused_links,
        refused_merges=planner.refused_merges,
    )


def customers_create_many(
    new_customers: dict[uuid.UUID, dict[str, Any]],
    identities: Sequence[tuple[Ident, uuid.UUID]],
) -> None:
    """Bulk-create profiles (each with its data key and initial field values) and identities:
    the set-based twin of `customer_create`, for ingestion. The caller owns the transaction and
    the audit entry."""
    if new_customers:
        subject_keys_create(new_customers)
        customers = []
        for cid, values in new_customers.items():
            values = dict(values)
            country = values.pop("country", "") or ""
            customers.append(
                Customer(id=cid, country=country, jurisdiction=jurisdiction_for(country), **values)
            )
        Customer.objects.bulk_create(customers)
    if identities:
        Identity.objects.bulk_create(
            [
                Identity(
                    customer_id=cid,
                    kind=ident.kind,
                    value=ident.normalized,
                    value_index=ident.index,
                )
                for ident, cid in identities
            ]
        )


def _move_identities(rows: Sequence[Identity], target: dict[uuid.UUID, uuid.UUID]) -> list[str]:
    """Re-key identities to other profiles: decrypt, delete, re-insert sealed for the target."""
    if not rows:
        return []
    subject_keys_load({r.customer_id for r in rows} | set(target.values()))
    moved = [
        Identity(
            id=row.id,
            customer_id=target[row.customer_id],
            kind=row.kind,
            namespace=row.namespace,
            value=row.value,  # decrypted here, sealed again under the target's key on insert
            value_index=bytes(row.value_index),
            created_at=row.created_at,
        )
        for row in rows
    ]
    Identity.objects.filter(id__in=[r.id for r in rows]).delete()
    Identity.objects.bulk_create(moved)
    return [str(r.id) for r in rows]


def merges_apply(merges: Sequence[PlannedMerge], *, actor: str) -> list[Merge]:
    """Merge stored profiles (losers into survivors), inside the caller's transaction.

    Both rows are locked first; a pair whose state changed since planning (already merged,
    restricted or erased meanwhile) is skipped. Survivorship: the survivor keeps every value it
    has; empty fields, missing trait keys and missing attributes are filled from the merged
    profile, and each filled item is recorded so that an unmerge can take it back.
    """
    if not merges:
        return []
    ids = {m.loser for m in merges} | {m.survivor for m in merges}
    locked = {
        c.id: c for c in Customer.objects.select_for_update().filter(id__in=ids).order_by("id")
    }
    subject_keys_load(ids)
    done: list[Merge] = []
    for planned in merges:
        loser, survivor = locked.get(planned.loser), locked.get(planned.survivor)
        if (
            loser is None
            or survivor is None
            or not (loser.status == survivor.status == CustomerStatus.ACTIVE)
        ):
            continue
        identities = list(Identity.objects.filter(customer_id=loser.id))
        moved = _move_identities(identities, {loser.id: survivor.id})
        before = {
            "traits": survivor.traits,
            "attributes": survivor.attributes,
            "country": survivor.country,
        }
        filled: list[str] = []
        for name in PROFILE_FIELDS:
            if getattr(survivor, name) is None and getattr(loser, name) is not None:
                setattr(survivor, name, getattr(loser, name))
                filled.append(name)
        if survivor.email_index is None and loser.email_index is not None:
            survivor.email_index = loser.email_index
        if survivor.phone_index is None and loser.phone_index is not None:
            survivor.phone_index = loser.phone_index
        traits = dict(survivor.traits or {})
        for key, value in (loser.traits or {}).items():
            if key not in traits:
                traits[key] = value
                filled.append(f"traits.{key}")
        attributes = dict(survivor.attributes or {})
        for key, value in (loser.attributes or {}).items():
            if key not in attributes:
                attributes[key] = value
                filled.append(f"attributes.{key}")
        survivor.traits = traits or None
        survivor.attributes = attributes
        if not survivor.country and loser.country:
            survivor.country, survivor.jurisdiction = loser.country, loser.jurisdiction
            filled.append("country")
        survivor.save()
        Customer.objects.filter(id=loser.id).update(
            status=CustomerStatus.MERGED, merged_into=survivor.id, updated_at=timezone.now()
        )
        loser.status = CustomerStatus.MERGED
        record = Merge(
            from_customer_id=loser.id,
            into_customer_id=survivor.id,
            rule=planned.rule,
            actor=actor,
            moved_identities=moved,
            filled_fields=filled,
            before=before,
        )
        record.save(force_insert=True)
        audit_record(
            actor=actor,
            action="customer.merge",
            object_type="profiles.customer",
            object_id=str(survivor.id),
            details={
                "merge": str(record.id),
                "from": str(loser.id),
                "rule": planned.rule,
                "identities_moved": len(moved),
                "filled": len(filled),
            },
        )
        done.append(record)
    return done


def customer_unmerge(*, merge: Merge, actor: str) -> Merge:
    """Undo a merge: the merged profile is active again with its identities, and the survivor
    loses what survivorship filled in from it (values changed since then are kept).

    Events stored for either profile stay where they are; events received after the merge
    through the merged profile's identifiers stay with the survivor.
    """
    with transaction.atomic():
        record = Merge.objects.select_for_update().get(pk=merge.pk)
        if record.unmerged_at is not None:
            return record
        customers = {
            c.id: c
            for c in Customer.objects.select_for_update()
            .filter(id__in=[record.from_customer_id, record.into_customer_id])
            .order_by("id")
        }
        loser, survivor = customers[record.from_customer_id], customers[record.into_customer_id]
        subject_keys_load(customers)
        rows = list(
            Identity.objects.filter(id__in=record.moved_identities, customer_id=survivor.id)
        )
        _move_identities(rows, {survivor.id: loser.id})
        before = record.before or {}
        traits = dict(survivor.traits or {})
        attributes = dict(survivor.attributes or {})
        for item in record.filled_fields:
            group, _, key = item.partition(".")
            if group == "traits" and key:
                if traits.get(key) == (loser.traits or {}).get(key):
                    traits.pop(key, None)
            elif group == "attributes" and key:
                if attributes.get(key) == (loser.attributes or {}).get(key):
                    attributes.pop(key, None)
            elif item == "country":
                if survivor.country == loser.country:
                    survivor.country = before.get("country", "")
                    survivor.jurisdiction = jurisdiction_for(survivor.country)
            elif getattr(survivor, item) == getattr(loser, item):
                setattr(survivor, item, None)
                if item in ("email", "phone"):
                    setattr(survivor, f"{item}_index", None)
        survivor.traits = traits or None
        survivor.attributes = attributes
        survivor.save()
        Customer.objects.filter(id=loser.id).update(
            status=CustomerStatus.ACTIVE, merged_into=None, updated_at=timezone.now()
        )
        record.unmerged_at = timezone.now()
        record.unmerged_by = actor
        record.save(update_fields=["unmerged_at", "unmerged_by"])
        audit_record(
            actor=actor,
            action="customer.unmerge",
            object_type="profiles.customer",
            object_id=str(survivor.id),
            details={
                "merge": str(record.id),
                "restored": str(loser.id),
                "identities_returned": len(rows),
            },
        )
    return record
