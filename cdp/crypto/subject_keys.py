"""Per-subject data keys: creation, a bounded in-process cache, shredding and KEK rotation."""

from __future__ import annotations

import os
import secrets
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from cdp.crypto import aead
from cdp.crypto.errors import KeyDestroyedError, UnknownKeyError
from cdp.crypto.keyring import NONCE_BYTES, get_keyring
from cdp.crypto.models import SubjectKey
from cdp.db import binding_cursor, copy_binary

DEK_BYTES = 32
_KEY_ID_BYTES = 4  # what secrets.randbits(32) draws


@dataclass(frozen=True)
class DataKey:
    key_id: int
    cipher: AESGCM
    header: bytes  # the stored-value header for this key, computed once
    subject: bytes  # the subject id as it appears in associated data, computed once
    _prefixes: dict[bytes, bytes] = field(default_factory=dict, compare=False, repr=False)

    def aad_prefix(self, where: bytes) -> bytes:
        """Associated data up to the row id, for one table and column (cached: hot path)."""
        prefix = self._prefixes.get(where)
        if prefix is None:
            prefix = self._prefixes[where] = aead.associated_data(
                self.header, where, self.subject, b""
            )
        return prefix


class _DataKeyCache:
    """A bounded cache of unwrapped data keys with a time-to-live, keyed by subject UUID.

    The size bounds memory (oldest entries go first); the TTL bounds how long another process
    can still read a subject whose key was just destroyed (this process evicts at once). Reads
    take no lock: single dict operations are atomic in CPython, and this is the hot path of
    every encrypted read and write.
    """

    def __init__(self) -> None:
        # Keyed by the UUID's integer: hashing an int is native, hashing a UUID runs Python code.
        # An OrderedDict drops its oldest entry in constant time; a dict's first key is found by
        # stepping over the slots of every entry removed before it (7.8 µs a put at 10,000).
        self._entries: OrderedDict[int, tuple[float, DataKey]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, subject_id: uuid.UUID) -> DataKey | None:
        entry = self._entries.get(subject_id.int)
        if entry is None:
            return None
        if entry[0] < time.monotonic():
            self._entries.pop(subject_id.int, None)
            return None
        return entry[1]

    def put(self, subject_id: uuid.UUID, key: DataKey) -> None:
        self.put_many(((subject_id, key),))

    def put_many(self, entries: Iterable[tuple[uuid.UUID, DataKey]]) -> None:
        """Cache the keys, dropping the oldest beyond `CDP_DEK_CACHE_SIZE`; the settings read
        and the lock taken once for all of them."""
        size = settings.CDP_DEK_CACHE_SIZE
        if size <= 0:
            return
        expires = time.monotonic() + settings.CDP_DEK_CACHE_SECONDS
        store = self._entries
        with self._lock:
            for subject_id, key in entries:
                store.pop(subject_id.int, None)
                store[subject_id.int] = (expires, key)
            while len(store) > size:
                store.popitem(last=False)

    def evict(self, subject_id: uuid.UUID) -> None:
        self._entries.pop(subject_id.int, None)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


_cache = _DataKeyCache()


def cached_key(subject_id: object) -> DataKey | None:
    """The cached key of a subject given as a UUID, or None (then call subject_key_get*)."""
    if subject_id.__class__ is not uuid.UUID:
        return None
    entry = _cache._entries.get(subject_id.int)  # type: ignore[attr-defined]
    if entry is not None and entry[0] >= time.monotonic():
        return entry[1]
    return None


def cache_clear() -> None:
    _cache.clear()


def _unwrap(row: SubjectKey) -> DataKey:
    return _data_key(row.subject_id, row.key_id, row.kek_id, row.wrapped_key)


def _data_key(subject_id: uuid.UUID, key_id: int, kek_id: str, wrapped: bytes) -> DataKey:
    dek = get_keyring().unwrap(
        bytes(wrapped), kek_id=kek_id, subject_id=str(subject_id), key_id=key_id
    )
    return DataKey(key_id, AESGCM(dek), aead.header_for(key_id), aead.id_bytes(subject_id))


def _as_uuid(subject_id: uuid.UUID | str) -> uuid.UUID:
    return subject_id if subject_id.__class__ is uuid.UUID else uuid.UUID(str(subject_id))


def subject_key_get(subject_id: uuid.UUID | str) -> DataKey:
    """The subject's data key, for decryption; KeyDestroyedError when it does not exist."""
    sid = subject_id if subject_id.__class__ is uuid.UUID else _as_uuid(subject_id)
    entry = _cache._entries.get(sid.int)  # inlined _cache.get(): the hot path of every value
    if entry is not None and entry[0] >= time.monotonic():
        return entry[1]
    row = SubjectKey.objects.filter(subject_id=sid).first()
    if row is None:
        raise KeyDestroyedError(f"subject {sid} has no data key (destroyed or never created)")
    key = _unwrap(row)
    _cache.put(sid, key)
    return key


def subject_key_get_or_create(subject_id: uuid.UUID | str) -> DataKey:
    """The subject's data key, created on first use; safe when two processes race to create it."""
    sid = subject_id if subject_id.__class__ is uuid.UUID else _as_uuid(subject_id)
    entry = _cache._entries.get(sid.int)  # inlined _cache.get(): the hot path of every value
    if entry is not None and entry[0] >= time.monotonic():
        return entry[1]
    row = SubjectKey.objects.filter(subject_id=sid).first()
    if row is None:
        SubjectKey.objects.bulk_create([_new_key_row(sid)], ignore_conflicts=True)
        # Another writer may have won the race: read back whichever key is stored.
        row = SubjectKey.objects.get(subject_id=sid)
    key = _unwrap(row)
    _cache.put(sid, key)
    return key


def _new_key_row(subject_id: uuid.UUID) -> SubjectKey:
    key_id = secrets.randbits(32)
    kek_id, wrapped = get_keyring().wrap(
        os.urandom(DEK_BYTES), subject_id=str(subject_id), key_id=key_id
    )
    return SubjectKey(subject_id=subject_id, key_id=key_id, kek_id=kek_id, wrapped_key=wrapped)


_INSERT_KEYS = """
INSERT INTO crypto_subjectkey (subject_id, key_id, kek_id, wrapped_key, created_at)
SELECT subject_id, key_id, kek_id, wrapped_key, %b
FROM unnest(%b::uuid[], %b::bigint[], %b::varchar[], %b::bytea[])
    AS t(subject_id, key_id, kek_id, wrapped_key)
ON CONFLICT (subject_id) DO NOTHING
RETURNING subject_id
"""


def _wrapped_fresh_keys(
    subject_ids: list[uuid.UUID],
) -> tuple[str, dict[uuid.UUID, tuple[int, bytes]], list[int], list[bytes]]:
    """New data keys for the subjects, wrapped as `Keyring.wrap` wraps them: (KEK id, subject
    -> (key id, plaintext key), key ids, wrapped keys). The key ids, keys and wrapping nonces of
    all subjects come from one read of the system's generator, and the wrapping is one loop with
    the primary KEK's cipher (an import creates thousands of keys per chunk, and the per-key
    calls cost more than the AES work)."""
    kek_id, wrap = get_keyring().primary_wrapper()
    stride = _KEY_ID_BYTES + DEK_BYTES + NONCE_BYTES
    pool = os.urandom(stride * len(subject_ids))
    fresh: dict[uuid.UUID, tuple[int, bytes]] = {}
    key_ids, wrapped_keys = [], []
    for n, sid in enumerate(subject_ids):
        at = n * stride
        key_id = int.from_bytes(pool[at : at + _KEY_ID_BYTES], "big")
        dek = pool[at + _KEY_ID_BYTES : at + _KEY_ID_BYTES + DEK_BYTES]
        nonce = pool[at + _KEY_ID_BYTES + DEK_BYTES : at + stride]
        wrapped = wrap(dek, nonce, str(sid), key_id)
        fresh[sid] = (key_id, dek)
        key_ids.append(key_id)
        wrapped_keys.append(wrapped)
    return kek_id, fresh, key_ids, wrapped_keys


def subject_keys_create(subject_ids: Iterable[uuid.UUID]) -> None:
    """Create data keys for many new subjects in one INSERT and load them into the cache.

    The set-based twin of `subject_key_get_or_create` (three queries per subject), for ingestion
    and imports. A subject that already has a key keeps it (the insert ignores conflicts): the
    fresh plaintext keys go straight into the cache only for the rows actually inserted, and the
    others are read back (one more query, only when there are conflicts).
    """
    wanted = [sid for sid in dict.fromkeys(map(_as_uuid, subject_ids)) if cached_key(sid) is None]
    if not wanted:
        return
    kek_id, fresh, key_ids, wrapped_keys = _wrapped_fresh_keys(wanted)
    with binding_cursor() as cursor:
        cursor.execute(
            _INSERT_KEYS, [timezone.now(), wanted, key_ids, [kek_id] * len(wanted), wrapped_keys]
        )
        inserted = [row[0] for row in cursor.fetchall()]
    _cache.put_many((sid, _new_data_key(sid, *fresh.pop(sid))) for sid in inserted)
    if fresh:  # another writer created these subjects' keys first: use the stored ones
        subject_keys_load(fresh)


_KEY_COLUMNS = ("subject_id", "key_id", "kek_id", "wrapped_key", "created_at")
_KEY_TYPES = ("uuid", "int8", "text", "bytea", "timestamptz")


def subject_keys_create_new(subject_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, DataKey]:
    """Data keys for subjects the caller has just made up (fresh random ids, such as the
    profiles an import creates), written with one binary COPY, cached, and returned.

    Unlike `subject_keys_create` nothing is checked or read back: the INSERT's array binding
    and RETURNING cost as much as the rest of creating a key. A subject that already had a key
    fails the statement (a duplicate primary key) and with it the caller's transaction, so use
    it only for ids no one else can hold yet."""
    wanted = list(dict.fromkeys(subject_ids))
    if not wanted:
        return {}
    kek_id, fresh, key_ids, wrapped_keys = _wrapped_fresh_keys(wanted)
    now = timezone.now()
    # Errors as Django's (an IntegrityError, which the import retries a chunk on).
    with connection.wrap_database_errors:
        copy_binary(
            SubjectKey._meta.db_table,
            _KEY_COLUMNS,
            _KEY_TYPES,
            (
                (sid, key_id, kek_id, wrapped, now)
                for sid, key_id, wrapped in zip(wanted, key_ids, wrapped_keys, strict=True)
            ),
        )
    keys = {sid: _new_data_key(sid, *fresh[sid]) for sid in wanted}
    _cache.put_many(keys.items())
    return keys


def _new_data_key(sid: uuid.UUID, key_id: int, dek: bytes) -> DataKey:
    return DataKey(key_id, AESGCM(dek), aead.header_for(key_id), sid.bytes)


def subject_keys_held(subject_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, DataKey]:
    """The data key of every subject, held by the caller for one unit of work (a tracking
    batch, an import chunk); created where a subject has none.

    The keys this process caches are taken before the missing ones are loaded (in one query):
    loading pushes the oldest entries out of the bounded cache, and those can be keys of this
    very batch, which would then be read again one query each."""
    keys: dict[uuid.UUID, DataKey] = {}
    missing = []
    for sid in set(subject_ids):
        key = cached_key(sid)
        if key is None:
            missing.append(sid)
        else:
            keys[sid] = key
    if missing:
        subject_keys_load(missing)
        for sid in missing:
            keys[sid] = cached_key(sid) or subject_key_get_or_create(sid)
    return keys


# A primary-key probe per subject (LIMIT keeps the LATERAL from being flattened into a hash join
# over the whole table); the array's ordinality comes back instead of decoding each UUID.
_LOAD_KEYS = """
SELECT u.n, k.key_id, k.kek_id, k.wrapped_key
FROM unnest(%b::uuid[]) WITH ORDINALITY AS u(id, n)
CROSS JOIN LATERAL (
    SELECT key_id, kek_id, wrapped_key FROM crypto_subjectkey WHERE subject_id = u.id LIMIT 1
) AS k
"""


def subject_keys_load(subject_ids: Iterable[uuid.UUID | str]) -> int:
    """Warm the cache for many subjects in one query (list pages, exports, every ingestion
    batch); returns keys loaded. Raw rows, not model instances: this runs for each batch."""
    wanted = [sid for sid in {_as_uuid(s) for s in subject_ids} if _cache.get(sid) is None]
    if not wanted:
        return 0
    with binding_cursor() as cursor:
        cursor.execute(_LOAD_KEYS, [wanted])
        rows = cursor.fetchall()
    for n, key_id, kek_id, wrapped in rows:
        sid = wanted[n - 1]
        _cache.put(sid, _data_key(sid, key_id, kek_id, wrapped))
    return len(rows)


def subject_key_shred(subject_id: uuid.UUID | str) -> bool:
    """Destroy the subject's data key (cryptographic erase); True when a key existed.

    The caller's transaction decides when it takes effect; this process's cache forgets the key
    at once, other processes within CDP_DEK_CACHE_SECONDS.
    """
    return subject_keys_shred([subject_id]) > 0


def subject_keys_shred(subject_ids: Iterable[uuid.UUID | str]) -> int:
    """Destroy the data keys of the subjects in one statement (an erasure of merged profiles
    shreds several); returns how many keys existed. Same transaction and cache rules as
    `subject_key_shred`."""
    sids = [_as_uuid(s) for s in subject_ids]
    if not sids:
        return 0
    with binding_cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {SubjectKey._meta.db_table} WHERE subject_id = ANY(%s::uuid[])",  # noqa: S608
            [sids],
        )
        deleted = cursor.rowcount
    for sid in sids:
        _cache.evict(sid)

    def evict_after_commit() -> None:
        for sid in sids:
            _cache.evict(sid)

    transaction.on_commit(evict_after_commit)
    return deleted


@dataclass
class RotationReport:
    primary: str
    rotated: int = 0
    already_current: int = 0
    failed: dict[str, int] = field(default_factory=dict)
    remaining_by_kek: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed


def subject_keys_rotate(
    *,
    batch_size: int = 1000,
    on_progress: Callable[[int, int], None] | None = None,
) -> RotationReport:
    """Re-wrap every data key not under the primary KEK, one committed batch at a time.

    Data is never re-encrypted. Interrupting loses at most the batch in flight, and a rerun picks
    up only what is left, so the command is safe to stop and repeat.
    """
    keyring = get_keyring()
    primary = keyring.primary_id
    report = RotationReport(primary=primary)
    report.already_current = SubjectKey.objects.filter(kek_id=primary).count()
    total = SubjectKey.objects.exclude(kek_id=primary).count()
    last_pk: uuid.UUID | None = None
    done = 0
    while True:
        with transaction.atomic():
            batch = SubjectKey.objects.exclude(kek_id=primary).order_by("subject_id")
            if last_pk is not None:
                batch = batch.filter(subject_id__gt=last_pk)
            rows = list(batch.select_for_update(skip_locked=True)[:batch_size])
            if not rows:
                break
            now = timezone.now()
            changed = []
            for row in rows:
                sid = str(row.subject_id)
                try:
                    dek = keyring.unwrap(
                        bytes(row.wrapped_key), kek_id=row.kek_id, subject_id=sid, key_id=row.key_id
                    )
                except UnknownKeyError:
                    report.failed[row.kek_id] = report.failed.get(row.kek_id, 0) + 1
                    continue
                row.kek_id, row.wrapped_key = keyring.wrap(dek, subject_id=sid, key_id=row.key_id)
                row.rotated_at = now
                changed.append(row)
            SubjectKey.objects.bulk_update(changed, ["kek_id", "wrapped_key", "rotated_at"])
            report.rotated += len(changed)
            last_pk = rows[-1].subject_id
        done += len(rows)
        if on_progress is not None:
            on_progress(done, total)
    for kek_id in (
        SubjectKey.objects.exclude(kek_id=primary).values_list("kek_id", flat=True).distinct()
    ):
        report.remaining_by_kek[kek_id] = SubjectKey.objects.filter(kek_id=kek_id).count()
    return report
