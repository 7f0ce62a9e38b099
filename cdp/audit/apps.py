from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "cdp.audit"
    label = "audit"
