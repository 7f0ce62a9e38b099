from django.apps import AppConfig


class SegmentsConfig(AppConfig):
    """Rule segments: conditions, memberships with history, refresh, webhooks, member API."""

    name = "segmentation.segments"
    label = "segments"
    verbose_name = "Segments"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from cdp.ingest.hooks import register_touched_hook
        from consent.hooks import register_withdrawal_hook
        from segmentation.segments import personal_data  # noqa: F401
        from segmentation.segments.services import (
            segment_members_recheck,
            segment_memberships_purge,
        )

        # Consent sits below segmentation and ingest knows nothing of it: both call us back.
        register_withdrawal_hook(segment_memberships_purge)
        register_touched_hook(segment_members_recheck)
