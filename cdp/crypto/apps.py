from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class CryptoConfig(AppConfig):
    name = "cdp.crypto"
    label = "crypto"
    verbose_name = "Encryption"

    def ready(self) -> None:
        from cdp.crypto import checks  # noqa: F401  (registers the system checks)

        autodiscover_modules("personal_data")
