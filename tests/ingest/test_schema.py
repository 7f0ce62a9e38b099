"""The tracking endpoints are in the OpenAPI schema, and a schemathesis run against them
finds no server error (5xx) and no error body without `code` and `message`."""

from __future__ import annotations

import pytest
import schemathesis
from django.core.management import call_command
from hypothesis import HealthCheck, settings

from tests.ingest.conftest import basic

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("ledger_emptied")]

PATHS = [
    "/v1/batch",
    "/v1/identify",
    "/v1/track",
    "/v1/page",
    "/v1/screen",
    "/v1/group",
    "/v1/alias",
]


@pytest.fixture
def schema_file(tmp_path):
    out = tmp_path / "schema.json"
    call_command("spectacular", "--format", "openapi-json", "--file", str(out))
    return out


def test_schema_documents_every_tracking_endpoint_with_an_example(schema_file):
    import json

    schema = json.loads(schema_file.read_text())
    for path in PATHS:
        operation = schema["paths"][path]["post"]
        assert operation["tags"] == ["tracking"]
        assert "example" in json.dumps(operation["requestBody"])
        assert set(operation["responses"]) >= {"200", "400", "401", "429"}


def test_schemathesis_finds_no_server_error(live_server, source, schema_file):
    schema = schemathesis.openapi.from_path(str(schema_file)).include(path_regex=r"^/v1/")
    failures: list[str] = []
    statuses: list[int] = []
    headers = {"Authorization": basic(source.write_key)}

    for operation in schema.get_all_operations():
        op = operation.ok()

        @settings(
            max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        @schemathesis_given(op)
        def run(case):
            response = case.call(base_url=live_server.url, headers=headers)
            statuses.append(response.status_code)
            if response.status_code >= 500:
                failures.append(f"{op.path} {response.status_code}")
            elif response.status_code != 200:
                body = response.json()
                if not {"code", "message"} <= set(body):
                    failures.append(f"{op.path} {response.status_code} without code/message")

        run()

    assert failures == []
    assert len(statuses) >= len(PATHS) * 10
    assert 200 in statuses and 400 in statuses


def schemathesis_given(op):
    from hypothesis import given

    return given(case=op.as_strategy())
