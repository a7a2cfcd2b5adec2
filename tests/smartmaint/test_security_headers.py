"""Content-Security-Policy on every page, Swagger UI without inline code, and the production HSTS default.
(The browser test, tests/admin/test_browser.py, shows the pages work under the policy.)"""

import re

import pytest

from tests.conftest import run_manage
from tests.smartmaint.test_startup import PRODUCTION

pytestmark = pytest.mark.django_db

PRINT_HSTS = "from django.conf import settings; print(settings.SECURE_HSTS_SECONDS)"


@pytest.mark.parametrize("url", ["/admin/login/", "/api/docs/", "/api/docs/?script", "/api/v1/auth/token"])
def test_pages_carry_a_policy_without_inline_code_or_eval(client, url):
    policy = client.get(url)["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
    assert directives["object-src"] == "'none'" and directives["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy


def test_swagger_ui_page_has_no_inline_script_or_style(client):
    page = client.get("/api/docs/").content.decode()
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", page) == []
    assert "<style" not in page and "style=" not in page
    script = client.get("/api/docs/?script")
    assert script.status_code == 200 and script["Content-Type"].startswith("application/javascript")
    assert "SwaggerUIBundle(" in script.content.decode()


def test_production_hsts_defaults_to_one_year_and_can_be_lowered(tmp_path):
    env = {key: value for key, value in PRODUCTION.items() if key != "DJANGO_SECURE_HSTS_SECONDS"}
    env["DJANGO_VAR_DIR"] = str(tmp_path)
    default = run_manage("shell", "-c", PRINT_HSTS, env=env)
    assert default.stdout.strip().splitlines()[-1] == "31536000", default.stderr
    lowered = run_manage("shell", "-c", PRINT_HSTS, env={**env, "DJANGO_SECURE_HSTS_SECONDS": "3600"})
    assert lowered.stdout.strip().splitlines()[-1] == "3600", lowered.stderr
    debug = run_manage("shell", "-c", PRINT_HSTS, env={"DJANGO_VAR_DIR": str(tmp_path)})  # run_manage: debug on
    assert debug.stdout.strip().splitlines()[-1] == "0", debug.stderr
