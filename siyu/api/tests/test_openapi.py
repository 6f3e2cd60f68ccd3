"""The OpenAPI document and the docs page: valid, complete, self-hosted."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import jsonschema_rs
import pytest
from django.test import Client
from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR

from siyu.api.api import API_VERSION

# Every keyword a schema in the document may use: JSON Schema 2020-12 plus OpenAPI's own. An unknown keyword
# is silently ignored by validators, so a typo (or pydantic emitting "ge" instead of "minimum") would
# document no constraint at all.
KEYWORDS = {
    "$ref", "$defs", "type", "properties", "required", "items", "additionalProperties", "enum", "const",
    "anyOf", "oneOf", "allOf", "not", "title", "description", "default", "format", "pattern", "minLength",
    "maxLength", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minItems", "maxItems",
    "uniqueItems", "examples", "example", "deprecated", "readOnly", "writeOnly", "discriminator",
    "prefixItems",  # OpenAPI 3.1 (JSON Schema 2020-12) tuples: [opens, closes]
}  # fmt: skip


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    response = Client().get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    return json.loads(response.content)


def _schemas(node: Any) -> Iterator[dict[str, Any]]:
    """Every JSON Schema object in the document (components, parameters, bodies, responses), nested ones too."""
    if isinstance(node, dict):
        if "type" in node or "$ref" in node or "anyOf" in node or "enum" in node:
            yield node
        for key, value in node.items():
            # Inside `properties`, keys are field names, not keywords.
            if key == "properties" and isinstance(value, dict):
                for sub in value.values():
                    yield from _schemas(sub)
            elif key not in {"examples", "example", "default", "enum", "const"}:
                yield from _schemas(value)
    elif isinstance(node, list):
        for item in node:
            yield from _schemas(item)


def test_document_is_valid_openapi_31(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1")
    OPENAPI_31_VALIDATOR.validate(document)


def test_every_schema_is_valid_json_schema_with_known_keywords(document: dict[str, Any]) -> None:
    schemas = list(_schemas({"schemas": document["components"]["schemas"], "paths": document["paths"]}))
    assert len(schemas) > 100
    for schema in schemas:
        assert set(schema) <= KEYWORDS, schema
        jsonschema_rs.meta.validate({k: v for k, v in schema.items() if k != "$ref"})
        if "pattern" in schema:
            re.compile(schema["pattern"])


def test_document_metadata(document: dict[str, Any]) -> None:
    assert document["info"]["title"] == "siyu API"
    assert document["info"]["version"] == API_VERSION
    assert document["components"]["securitySchemes"] == {"TokenAuth": {"type": "http", "scheme": "bearer"}}


def test_every_operation_is_documented(document: dict[str, Any]) -> None:
    """Operation ids are unique and named; every operation is authenticated, tagged and documents its errors."""
    operation_ids = []
    for path, methods in document["paths"].items():
        assert path.startswith("/api/v1/")
        for method, operation in methods.items():
            operation_ids.append(operation["operationId"])
            assert re.fullmatch(r"[a-z]+(_[a-z]+)+", operation["operationId"]), operation["operationId"]
            assert operation["summary"]
            assert len(operation["tags"]) == 1
            assert operation["security"] == [{"TokenAuth": []}]
            errors = {code: r for code, r in operation["responses"].items() if code.startswith("4")}
            assert "401" in errors, f"{method} {path}"
            for response in errors.values():
                assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorOut"}
            if "requestBody" in operation or "{" in path:
                assert "422" in errors, f"{method} {path}"
            if "requestBody" in operation:
                assert "400" in errors, f"{method} {path}"
    # Every operation also needs its row in the authorisation matrix (test_matrix_covers_every_operation), which
    # is where a new endpoint is reviewed; here only that the ids are unique, as generated clients need.
    assert len(operation_ids) == len(set(operation_ids)) > 80


def test_enums_have_distinct_names(document: dict[str, Any]) -> None:
    """Django's nested choices (Identity.Kind, Guide.Kind) must not collapse into one "Kind" component."""
    components = document["components"]["schemas"]
    assert components["IdentityKind"]["enum"] == [
        "wecom_external_userid", "unionid", "phone", "tmall_buyer", "jd_buyer", "youzan_buyer", "xiaoe_user",
        "member_no",
    ]  # fmt: skip
    assert components["GuideKind"]["enum"] == ["guide", "brand_ip"]
    assert "Kind" not in components
    assert "Status" not in components


def test_docs_page_serves_swagger_from_local_static_files(db: None) -> None:
    client = Client()
    page = client.get("/api/v1/docs")
    assert page.status_code == 200
    html = page.content.decode()
    assert "<title>siyu API</title>" in html
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert "/static/ninja/swagger-ui-bundle.js" in assets
    assert "/static/ninja/swagger-ui.css" in assets
    for asset in assets:
        # Nothing from a CDN: every script and stylesheet is served by this app.
        assert asset.startswith("/static/"), asset
        assert client.get(asset).status_code == 200, asset
    assert '"url": "/api/v1/openapi.json"' in html
