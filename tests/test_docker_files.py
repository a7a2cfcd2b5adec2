"""Static checks of the Docker files (no Docker engine runs here)."""

import re

import yaml

from tests.conftest import ROOT


def test_compose_file_is_consistent():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    for name, service in services.items():
        assert "image" in service or "build" in service, f"{name}: neither image nor build"
        if "image" in service:
            assert re.search(r":[\w.-]+$", service["image"]) and not service["image"].endswith(":latest"), (
                f"{name}: pin the image tag"
            )
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown service {dependency}"
    for volume in compose.get("volumes", {}):
        assert any(
            str(mount).startswith(f"{volume}:") for service in services.values() for mount in service.get("volumes", [])
        ), f"volume {volume} is never mounted"


def test_dockerfile_runs_our_wsgi_app_as_a_non_root_user():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^USER (?!root)\w+", dockerfile, re.MULTILINE)
    assert "smartmaint.wsgi:application" in dockerfile
    assert (ROOT / "smartmaint" / "wsgi.py").is_file()
    for source in re.findall(r"^COPY (?:--\S+ )*(\S+) ", dockerfile, re.MULTILINE):
        assert source == "." or (ROOT / source).exists(), f"COPY source {source} missing"
