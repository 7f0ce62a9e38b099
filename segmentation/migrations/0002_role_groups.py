from django.db import migrations

from cdp.profiles.roles import sync_role_groups


class Migration(migrations.Migration):
    dependencies = [
        ("segmentation", "0001_initial"),
        ("consent", "0003_role_groups"),
    ]

    operations = [migrations.RunPython(sync_role_groups, migrations.RunPython.noop)]
