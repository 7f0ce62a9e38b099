"""Clients logged in as a member of one role group (or anonymous), for authorization matrices."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group
from django.test import Client


def client_for(django_user_model: Any, role: str | None) -> Client:
    """A test client for a staff user in the role group `role`; `None` stays anonymous."""
    client = Client()
    if role is None:
        return client
    user = django_user_model.objects.create_user(
        username=role.lower().replace(" ", "-"), password="pw-" + "x" * 16, is_staff=True
    )
    user.groups.add(Group.objects.get(name=role))
    client.force_login(user)
    return client
