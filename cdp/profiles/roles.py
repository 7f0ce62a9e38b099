"""The role groups of DESIGN.md and the permissions each holds.

Migrations call `sync_role_groups`; later features add their permissions here and ship a
migration that calls it again. Syncing only adds: permissions granted by hand are kept. A grant
whose model is not migrated yet is skipped (the later app's own migration grants it); a test
checks that, once everything is migrated, every grant named here exists.
"""

from __future__ import annotations

from typing import Any

PLATFORM_ADMIN = "Platform admin"
CONSENT_ADMIN = "Consent admin"
COMPLIANCE_OFFICER = "Compliance officer"
ANALYST = "Analyst"

# "app_label.codename"; "app_label.*" means every permission of that app.
ROLE_PERMISSIONS: dict[str, list[str]] = {
    PLATFORM_ADMIN: [
        "auth.*",
        "profiles.*",
        "crypto.view_subjectkey",
        "audit.view_auditentry",
        "api.view_apitoken",
        "api.change_apitoken",
        "consent.*",
        "ingest.*",
        "segmentation.*",
        "segments.*",
        "personalization.*",
    ],
    CONSENT_ADMIN: [
        "profiles.view_customer",
        "profiles.view_identity",
        "consent.view_purpose",
        "consent.add_purpose",
        "consent.change_purpose",
        "consent.view_purposeversion",
        "consent.view_consentevent",
        "consent.view_consentstate",
        "consent.record_consent",
        # DESIGN.md: consent admins manage sources and imports.
        "ingest.view_source",
        "ingest.add_source",
        "ingest.change_source",
        "ingest.rotate_write_key",
        "ingest.view_propertyclass",
        "ingest.change_propertyclass",
        "ingest.view_importjob",
        "ingest.add_importjob",
        "ingest.change_importjob",
        "ingest.view_importrowerror",
        "ingest.view_columnmapping",
        "ingest.add_columnmapping",
        "ingest.change_columnmapping",
    ],
    COMPLIANCE_OFFICER: [
        "profiles.view_customer",
        "profiles.view_identity",
        "profiles.reveal_customer_pii",
        "audit.view_auditentry",
        "consent.view_purpose",
        "consent.view_purposeversion",
        "consent.view_consentevent",
        "consent.view_consentstate",
        "profiles.view_merge",
        "profiles.unmerge_customer",
        "ingest.view_source",
        "ingest.view_propertyclass",
        "ingest.view_suppression",
        "privacy.*",
    ],
    # Analysts see segments and personas (added with segmentation), never raw personal data;
    # they may read consent states (who may be used for what), not change them.
    ANALYST: [
        "consent.view_consentstate",
        "segmentation.view_featurerun",
        "segmentation.view_clusteringrun",
        "segmentation.view_persona",
        "segmentation.add_featurerun",
        "segmentation.start_clusteringrun",
        "segmentation.change_persona",
        "segments.view_segment",
        "segments.add_segment",
        "segments.change_segment",
        "segments.refresh_segment",
        "segments.preview_segment",
        "segments.view_segmentrefresh",
        "segments.view_segmentmembership",
        "personalization.view_modelrun",
        "personalization.start_modelrun",
        "personalization.view_modelinventory",
        "personalization.view_personalizationrule",
        "personalization.add_personalizationrule",
        "personalization.change_personalizationrule",
        "personalization.view_experiment",
        "personalization.add_experiment",
        "personalization.change_experiment",
        "personalization.view_variant",
        "personalization.add_variant",
        "personalization.change_variant",
        "personalization.view_driftreport",
        "personalization.view_driftalert",
        "personalization.change_driftalert",
    ],
}


def sync_role_groups(apps: Any, schema_editor: Any = None) -> None:
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        # Migration state app configs have no models module, and create_permissions skips such
        # apps; pretend for the call, then restore whatever was there (a real registry keeps it).
        saved = getattr(app_config, "models_module", None)
        app_config.models_module = saved or True
        try:
            create_permissions(app_config, apps=apps, verbosity=0)
        finally:
            app_config.models_module = saved

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, grants in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        for grant in grants:
            app_label, codename = grant.split(".", 1)
            perms = Permission.objects.filter(content_type__app_label=app_label)
            if codename != "*":
                perms = perms.filter(codename=codename)
            group.permissions.add(*perms)
