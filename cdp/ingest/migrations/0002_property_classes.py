from django.db import migrations

from cdp.ingest.classification_defaults import (
    NON_PERSONAL_PROPERTIES,
    NON_PERSONAL_TRAITS,
    PERSONAL_TRAITS,
    SENSITIVE_TRAITS,
)


def create(apps, schema_editor):
    PropertyClass = apps.get_model("ingest", "PropertyClass")
    rows = (
        [("traits", key, "personal") for key in PERSONAL_TRAITS]
        + [("traits", key, "sensitive") for key in SENSITIVE_TRAITS]
        + [("traits", key, "non_personal") for key in NON_PERSONAL_TRAITS]
        + [("properties", key, "non_personal") for key in NON_PERSONAL_PROPERTIES]
    )
    PropertyClass.objects.bulk_create(
        [PropertyClass(scope=scope, key=key, kind=kind) for scope, key, kind in rows],
        ignore_conflicts=True,
    )


class Migration(migrations.Migration):
    dependencies = [("ingest", "0001_initial")]

    operations = [migrations.RunPython(create, migrations.RunPython.noop)]
