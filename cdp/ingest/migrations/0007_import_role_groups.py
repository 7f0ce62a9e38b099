from django.db import migrations

from cdp.profiles.roles import sync_role_groups


class Migration(migrations.Migration):
    """Consent admins manage imports (DESIGN.md): grant the import permissions."""

    dependencies = [
        ("ingest", "0006_imports"),
        ("profiles", "0004_sourcerecord"),
    ]

    operations = [migrations.RunPython(sync_role_groups, migrations.RunPython.noop)]
