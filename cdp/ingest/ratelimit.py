"""Per-source rate limits: a fixed one-minute window counted in PostgreSQL.

One upsert per request, in autocommit (never inside the ingest transaction, so the row lock is
held for a moment only). Correct across any number of web processes: the database serialises
the increments. A request that would pass the limit takes nothing and gets 429.
"""

from __future__ import annotations

import datetime as dt
import math

from django.db import connection
from django.utils import timezone

from cdp.ingest.models import Source

WINDOW = dt.timedelta(minutes=1)

_TAKE = """
INSERT INTO ingest_sourceratewindow AS w (source_id, window_start, count)
VALUES (%(source)s, %(window)s, %(n)s)
ON CONFLICT (source_id) DO UPDATE SET
    window_start = EXCLUDED.window_start,
    count = CASE WHEN w.window_start = EXCLUDED.window_start THEN w.count + EXCLUDED.count
                 ELSE EXCLUDED.count END
WHERE w.window_start <> EXCLUDED.window_start OR w.count + EXCLUDED.count <= %(limit)s
RETURNING count
"""


def rate_limit_take(source: Source, messages: int, *, now: dt.datetime | None = None) -> int | None:
    """Count `messages` against the source's limit; None if allowed, else Retry-After seconds."""
    limit = source.rate_limit_per_minute
    if limit is None or messages <= 0:
        return None
    now = now or timezone.now()
    window = now.replace(second=0, microsecond=0)
    with connection.cursor() as cursor:
        cursor.execute(
            _TAKE, {"source": source.id, "window": window, "n": messages, "limit": limit}
        )
        if cursor.fetchone() is not None:
            return None
    return max(1, math.ceil((window + WINDOW - now).total_seconds()))
