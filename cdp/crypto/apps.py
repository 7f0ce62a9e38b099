from django.apps import AppConfig


class CryptoConfig(AppConfig):
    name = "cdp.crypto"
    label = "crypto"
