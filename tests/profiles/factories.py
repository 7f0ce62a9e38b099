"""Test data for profiles: customers created through the service, as production does."""

from __future__ import annotations

import itertools
from typing import Any

from cdp.profiles.models import Customer
from cdp.profiles.services import customer_create

_sequence = itertools.count(1)


def make_customer(**overrides: Any) -> Customer:
    n = next(_sequence)
    values: dict[str, Any] = {
        "actor": "system",
        "email": f"person{n}@example.com",
        "phone": f"+4420794609{n % 100:02d}",
        "first_name": f"First{n}",
        "last_name": f"Last{n}",
        "country": "GB",
    }
    values.update(overrides)
    return customer_create(**values)
