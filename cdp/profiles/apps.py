from django.apps import AppConfig


class ProfilesConfig(AppConfig):
    name = "cdp.profiles"
    label = "profiles"
    verbose_name = "Customer profiles"

    def ready(self) -> None:
        # The project-wide deploy checks live in cdp/checks.py; cdp itself is not an app.
        from cdp import checks  # noqa: F401
