from django.apps import AppConfig


class ProfilesConfig(AppConfig):
    name = "cdp.profiles"
    label = "profiles"
    verbose_name = "Customer profiles"
