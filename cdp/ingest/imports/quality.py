"""The data-quality report of a job, built in one pass in constant memory.

Per column: values present and missing. Per numeric measure (amounts, quantities, numeric
attributes and traits): count, mean and standard deviation (Welford), min and max (not for
personal traits: each is one person's value, as is a quartile of fewer than 20 values, so those
are left out too), and a reservoir sample
from which the quartiles, the IQR fences and the share of outliers are computed; when a column
has more values than the reservoir holds, the outlier counts are estimates and say so. The state
is JSON, saved sealed under the job's key with every chunk, so a resumed job continues the same
report.
"""

from __future__ import annotations

import math
import operator
import random
from collections.abc import Iterable
from typing import Any

RESERVOIR = 2_000
Z_LIMIT = 3.0
# Below this many values a quartile of a personal trait is as good as one person's value.
PERSONAL_MIN_COUNT = 20


def new_state() -> dict[str, Any]:
    return {"missing": {}, "present": {}, "numeric": {}}


def observe_presence(state: dict[str, Any], header: str, present: bool) -> None:
    bucket = state["present" if present else "missing"]
    bucket[header] = bucket.get(header, 0) + 1


def observe_presence_rows(
    state: dict[str, Any], headers: list[str], rows: Iterable[list[str]]
) -> None:
    """`observe_presence` for every cell of many rows (rows without one cell per header are
    skipped), counted per column first: a chunk adds to the state once per column."""
    width = len(headers)
    present = [0] * width
    complete = 0
    for values in rows:
        if len(values) == width:
            complete += 1
            present = list(map(operator.add, present, map(bool, map(str.strip, values))))
    if not complete:
        return
    for header, count in zip(headers, present, strict=True):
        if count:
            bucket = state["present"]
            bucket[header] = bucket.get(header, 0) + count
        if complete - count:
            bucket = state["missing"]
            bucket[header] = bucket.get(header, 0) + complete - count


def observe_number(
    state: dict[str, Any], name: str, value: float, rng: random.Random, *, personal: bool = False
) -> None:
    """`personal`: a trait's value (encrypted on the profile), whose report leaves out min and
    max, each one person's value."""
    s = state["numeric"].setdefault(
        name, {"n": 0, "mean": 0.0, "m2": 0.0, "min": None, "max": None, "sample": []}
    )
    if personal:
        s["personal"] = True
    s["n"] += 1
    delta = value - s["mean"]
    s["mean"] += delta / s["n"]
    s["m2"] += delta * (value - s["mean"])
    s["min"] = value if s["min"] is None else min(s["min"], value)
    s["max"] = value if s["max"] is None else max(s["max"], value)
    sample = s["sample"]
    if len(sample) < RESERVOIR:
        sample.append(value)
    else:
        slot = rng.randrange(s["n"])
        if slot < RESERVOIR:
            sample[slot] = value


def _quantile(values: list[float], q: float) -> float:
    position = (len(values) - 1) * q
    low, high = math.floor(position), math.ceil(position)
    return values[low] + (values[high] - values[low]) * (position - low)


def report(state: dict[str, Any], *, duplicates: int, rows: int) -> dict[str, Any]:
    """The report shown in the admin and the API (numbers only, never values of persons)."""
    columns = {}
    for header in sorted(set(state["present"]) | set(state["missing"])):
        missing = state["missing"].get(header, 0)
        total = missing + state["present"].get(header, 0)
        columns[header] = {
            "missing": missing,
            "missing_share": round(missing / total, 4) if total else 0.0,
        }
    measures = {}
    for name, s in sorted(state["numeric"].items()):
        n = s["n"]
        std = math.sqrt(s["m2"] / (n - 1)) if n > 1 else 0.0
        sample = sorted(s["sample"])
        entry: dict[str, Any] = {
            "count": n,
            "mean": round(s["mean"], 4),
            "std": round(std, 4),
        }
        if not s.get("personal"):
            entry.update({"min": s["min"], "max": s["max"]})
        if sample:
            q1, q3 = _quantile(sample, 0.25), _quantile(sample, 0.75)
            iqr = q3 - q1
            low, high = q1 - 1.5 * iqr, q3 + 1.5 * iqr
            iqr_out = sum(1 for v in sample if v < low or v > high)
            z_out = sum(1 for v in sample if std and abs(v - s["mean"]) / std > Z_LIMIT)
            scale = n / len(sample)
            entry.update(
                {
                    "iqr_outliers": round(iqr_out * scale),
                    "z_outliers": round(z_out * scale),
                    "estimated": n > len(sample),
                }
            )
            if not s.get("personal") or n >= PERSONAL_MIN_COUNT:
                entry.update(
                    {
                        "q1": round(q1, 4),
                        "median": round(_quantile(sample, 0.5), 4),
                        "q3": round(q3, 4),
                        "iqr_fences": [round(low, 4), round(high, 4)],
                    }
                )
        measures[name] = entry
    return {"rows": rows, "duplicates": duplicates, "columns": columns, "measures": measures}
