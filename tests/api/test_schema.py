"""The OpenAPI schema: generated without warnings, every operation documents its scopes and the error body, and the
Swagger UI is served from local files (no CDN)."""

import re

import pytest
import yaml
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.test import Client

from security.scopes import ALL_SCOPES


def test_schema_generates_and_validates_without_warnings(tmp_path) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    assert yaml.safe_load(target.read_text())["info"]["title"] == "Service desk API"


@pytest.fixture
def schema(db) -> dict:  # type: ignore[no-untyped-def]
    response = Client().get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return response.json()


def test_every_operation_documents_scopes_and_errors(schema) -> None:  # type: ignore[no-untyped-def]
    operations = [
        (path, method, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method in {"get", "post", "patch", "put", "delete"}
    ]
    assert len(operations) == 33  # tickets, directory, SLA, reports and webhooks
    for path, method, operation in operations:
        scopes = operation["x-required-scopes"]
        assert scopes, (path, method)
        assert set(scopes) <= ALL_SCOPES
        assert "Token scopes required: " + ", ".join(f"`{s}`" for s in scopes) in operation["description"]
        for status in ("400", "403", "413", "429"):
            content = operation["responses"][status]["content"]["application/json"]["schema"]
            assert content == {"$ref": "#/components/schemas/Error"}, (path, method, status)
        if "{" in path:
            assert "404" in operation["responses"], (path, method)
    assert sorted(schema["components"]["schemas"]["Error"]["required"]) == ["code", "detail", "fields"]


def test_ticket_scopes_in_the_schema(schema) -> None:  # type: ignore[no-untyped-def]
    paths = schema["paths"]
    assert paths["/api/v1/tickets/"]["get"]["x-required-scopes"] == ["tickets:read"]
    assert paths["/api/v1/tickets/"]["post"]["x-required-scopes"] == ["tickets:write"]
    assert paths["/api/v1/tickets/{number}/comments/"]["post"]["x-required-scopes"] == ["tickets:write"]
    assert paths["/api/v1/users/"]["get"]["x-required-scopes"] == ["directory:read"]
    assert paths["/api/v1/tickets/{number}/sla/"]["get"]["x-required-scopes"] == ["tickets:read", "sla:read"]
    idempotent = [p["name"] for p in paths["/api/v1/tickets/"]["post"]["parameters"]]
    assert idempotent == ["Idempotency-Key"]


def test_swagger_ui_is_served_from_local_static_files(db) -> None:  # type: ignore[no-untyped-def]
    response = Client().get("/api/v1/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources
    assert all(source.startswith("/static/drf_spectacular_sidecar/") for source in sources), sources
    for source in sources:
        assert finders.find(source.removeprefix("/static/")) is not None, source
