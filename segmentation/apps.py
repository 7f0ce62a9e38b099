from django.apps import AppConfig


class SegmentationConfig(AppConfig):
    name = "segmentation"
    verbose_name = "Segmentation"

    def ready(self) -> None:
        from consent.hooks import register_withdrawal_hook
        from segmentation.services import derived_data_purge

        # Consent sits below us: it calls this after a withdrawal commits (see consent.hooks).
        register_withdrawal_hook(derived_data_purge)
