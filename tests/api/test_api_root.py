"""/api/v1/ answers with the API root: the docs, the schema and every endpoint the schema documents."""

import pytest

pytestmark = pytest.mark.django_db


def schema_paths(client) -> dict[str, set[str]]:
    schema = client.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    return {path: {method.upper() for method in operations} for path, operations in schema["paths"].items()}


def test_api_root_links_the_docs_the_schema_and_every_endpoint(anon):
    response = anon.get("/api/v1/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    root = response.json()
    assert root["docs"] == "http://testserver/api/docs/"
    assert root["schema"] == "http://testserver/api/v1/schema/"
    assert anon.get(root["docs"]).status_code == 200
    assert anon.get(root["schema"]).status_code == 200

    endpoints = {entry["path"]: entry for entry in root["endpoints"]}
    assert endpoints["/api/v1/assets"] == {
        "path": "/api/v1/assets",
        "methods": ["GET", "POST"],
        "url": "http://testserver/api/v1/assets",
    }
    # A path with parameters is a template, not a link.
    assert endpoints["/api/v1/sensors/{sensor_id}/readings"] == {
        "path": "/api/v1/sensors/{sensor_id}/readings",
        "methods": ["GET"],
    }


def test_api_root_and_schema_list_the_same_endpoints_and_the_root_is_not_in_the_schema(anon):
    root = anon.get("/api/v1/", HTTP_ACCEPT="application/json").json()
    listed = {entry["path"]: set(entry["methods"]) for entry in root["endpoints"]}
    documented = schema_paths(anon)
    assert listed == documented
    assert "/api/v1/" not in documented


def test_api_root_is_browsable(anon):
    response = anon.get("/api/v1/", HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert b"/api/v1/fleet/status" in response.content
