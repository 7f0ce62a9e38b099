from importlib import import_module

from django.apps import AppConfig


class ConsentConfig(AppConfig):
    name = "consent"
    verbose_name = "Consent"

    def ready(self) -> None:
        from consent.conf import hook_modules

        # Plugins that register withdrawal hooks without being installed apps.
        for module in hook_modules():
            import_module(module)
