from django.apps import AppConfig


class IngestConfig(AppConfig):
    name = "cdp.ingest"
    label = "ingest"
    verbose_name = "Ingestion"
