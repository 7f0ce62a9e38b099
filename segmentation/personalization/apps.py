from django.apps import AppConfig


class PersonalizationConfig(AppConfig):
    """Predictive scores, recommendations, personalization rules, experiments and drift."""

    name = "segmentation.personalization"
    label = "personalization"
    verbose_name = "Personalization"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from consent.hooks import register_withdrawal_hook
        from segmentation.personalization import personal_data  # noqa: F401
        from segmentation.personalization.services import personalization_data_purge

        # Consent sits below us: it calls this after a withdrawal, objection or restriction.
        register_withdrawal_hook(personalization_data_purge)
