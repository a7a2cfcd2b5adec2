"""The OpenAPI schema and the interactive docs, served without any CDN."""

import re

import pytest
from django.contrib.staticfiles import finders

pytestmark = pytest.mark.django_db


def test_schema_is_openapi_3_and_lists_every_endpoint(anon):
    response = anon.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    paths = set(schema["paths"])
    assert {
        "/api/v1/assets",
        "/api/v1/sensors",
        "/api/v1/sensors/{sensor_id}",
        "/api/v1/readings/ingest",
        "/api/v1/sensors/{sensor_id}/readings",
        "/api/v1/sensors/{sensor_id}/aggregates",
        "/api/v1/sensors/{sensor_id}/latest",
        "/api/v1/fleet/status",
        "/api/v1/auth/token",
    } <= paths
    assert {"jwtAuth", "APIKeyAuth"} <= set(schema["components"]["securitySchemes"])


def test_docs_page_loads_its_assets_from_our_own_static_files(anon):
    page = anon.get("/api/docs/").content.decode()
    sources = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert sources, page
    for source in sources:
        assert not source.startswith(("http://", "https://", "//")), f"external asset {source}"
    scripts = [s for s in sources if s.endswith(".js")]
    assert scripts
    for script in scripts:
        path = script.split("/static/", 1)[1]
        assert finders.find(path), f"{path} is not among our static files"
