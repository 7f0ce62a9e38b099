import pytest
from django.contrib.auth.models import Group, Permission

from cdp.profiles.roles import ROLE_PERMISSIONS

pytestmark = pytest.mark.django_db


def test_every_role_group_exists_with_every_grant_it_names():
    for role, grants in ROLE_PERMISSIONS.items():
        group = Group.objects.get(name=role)
        held = {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.all()}
        for grant in grants:
            app_label, codename = grant.split(".", 1)
            if codename == "*":
                assert Permission.objects.filter(content_type__app_label=app_label).exists(), grant
                assert any(h.startswith(f"{app_label}.") for h in held), grant
            else:
                assert grant in held, f"{role} lacks {grant}"


def test_only_platform_admins_and_compliance_officers_can_reveal():
    revealers = set(
        Group.objects.filter(permissions__codename="reveal_customer_pii").values_list(
            "name", flat=True
        )
    )
    assert revealers == {"Platform admin", "Compliance officer"}


def test_analysts_hold_no_customer_permission():
    analyst = Group.objects.get(name="Analyst")
    assert not analyst.permissions.filter(content_type__app_label="profiles").exists()


def test_sync_with_the_real_registry_restores_groups_and_keeps_it_usable():
    from django.apps import apps

    from cdp.profiles.roles import sync_role_groups

    Group.objects.all().delete()
    modules = {c.label: c.models_module for c in apps.get_app_configs()}

    sync_role_groups(apps)

    assert {c.label: c.models_module for c in apps.get_app_configs()} == modules
    assert (
        Group.objects.get(name="Compliance officer")
        .permissions.filter(codename="reveal_customer_pii")
        .exists()
    )
