from cdp.crypto import registry
from cdp.crypto.checks import check_personal_data_registry
from cdp.crypto.registry import Category, personal_fields
from cdp.profiles.models import Customer


def test_every_encrypted_field_is_registered():
    assert check_personal_data_registry() == []


def test_unregistered_encrypted_field_fails_the_system_check():
    key = ("profiles.customer", "first_name")
    entry = registry._registry.pop(key)
    try:
        errors = check_personal_data_registry()
    finally:
        registry._registry[key] = entry
    assert [e.id for e in errors] == ["cdp.E101"]
    assert "profiles.Customer.first_name" in errors[0].msg


def test_registry_entry_for_a_missing_field_fails_the_system_check():
    registry.register("profiles.Customer", "shoe_size", category=Category.DEMOGRAPHIC)
    try:
        errors = check_personal_data_registry()
    finally:
        del registry._registry[("profiles.customer", "shoe_size")]
    assert [e.id for e in errors] == ["cdp.E102"]


def test_blind_indexes_are_registered_as_personal_data():
    names = {(f.model, f.field) for f in personal_fields()}
    assert ("profiles.Customer", "email_index") in names
    assert ("profiles.Identity", "value_index") in names
    assert all(f.model_class() is not None for f in personal_fields())
    assert Customer._meta.get_field("email_index")
