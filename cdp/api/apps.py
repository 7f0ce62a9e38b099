from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "cdp.api"
    label = "api"
    verbose_name = "API access"

    def ready(self) -> None:
        from cdp.api import schema  # noqa: F401  (registers the OpenAPI auth extension)
