from django.apps import AppConfig


class PrivacyConfig(AppConfig):
    name = "cdp.privacy"
    label = "privacy"
    verbose_name = "Privacy: data-subject requests"
