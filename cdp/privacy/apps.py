from django.apps import AppConfig


class PrivacyConfig(AppConfig):
    name = "cdp.privacy"
    label = "privacy"
    verbose_name = "Privacy: data-subject requests"

    def ready(self) -> None:
        # Recipients and their notices (Art. 19) live in their own modules; importing them here
        # registers the models, the admin pages and the tasks with everything else of the app.
        from cdp.privacy import recipient_admin, recipient_models, recipient_tasks  # noqa: F401
