"""Five starting purposes, one per coverage, so a fresh install can record consent at once.

Consent admins edit their wording in the admin (each edit is a new version). Written directly
(historical models cannot call services); the audit entry is the migration itself.
"""

import hashlib

from django.db import migrations

PURPOSES = [
    (
        "analytics",
        "Analytics",
        "analytics",
        "We measure how our website and apps are used, to improve them.",
    ),
    (
        "profiling",
        "Profiling",
        "profiling",
        "We analyse your purchases and activity to group customers with similar interests.",
    ),
    (
        "marketing",
        "Marketing",
        "marketing",
        "We send you offers and news about our products by e-mail and other channels.",
    ),
    (
        "sale_sharing",
        "Sale or sharing of personal information",
        "sale_sharing",
        "We share information about you with advertising partners for cross-context ads.",
    ),
    (
        "personalization",
        "Personalization",
        "personalization",
        "We tailor the content and products we show you to your interests.",
    ),
]


def create(apps, schema_editor):
    Purpose = apps.get_model("consent", "Purpose")
    PurposeVersion = apps.get_model("consent", "PurposeVersion")
    for code, title, coverage, text in PURPOSES:
        if Purpose.objects.filter(code=code).exists():
            continue
        digest = hashlib.sha256(text.encode()).hexdigest()
        purpose = Purpose.objects.create(
            code=code,
            title=title,
            notice_text=text,
            covers=[coverage],
            version=1,
            notice_hash=digest,
        )
        PurposeVersion.objects.create(
            purpose=purpose,
            version=1,
            title=title,
            notice_text=text,
            notice_hash=digest,
            created_by="migration:consent.0004",
        )


class Migration(migrations.Migration):
    dependencies = [("consent", "0003_role_groups")]

    operations = [migrations.RunPython(create, migrations.RunPython.noop)]
