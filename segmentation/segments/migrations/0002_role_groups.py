from django.db import migrations

from cdp.profiles.roles import sync_role_groups


class Migration(migrations.Migration):
    dependencies = [
        ("segments", "0001_initial"),
        ("segmentation", "0002_role_groups"),
    ]

    operations = [migrations.RunPython(sync_role_groups, migrations.RunPython.noop)]
