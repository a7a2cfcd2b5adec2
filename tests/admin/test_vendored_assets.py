"""The chart library comes from npm: the files under static/vendor/ are byte for byte those of the locked package.

The vendored copies are committed so that running the app needs no Node.js; this test proves where they came
from. It installs the lock file's packages with `npm ci` when static/vendor/node_modules is missing.
"""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

VENDOR = Path(__file__).resolve().parents[2] / "static" / "vendor"
# vendored file -> file in node_modules
VENDORED = {
    "uplot/uPlot.iife.min.js": "uplot/dist/uPlot.iife.min.js",
    "uplot/uPlot.min.css": "uplot/dist/uPlot.min.css",
    "uplot/LICENSE": "uplot/LICENSE",
}


@pytest.fixture(scope="module")
def node_modules() -> Path:
    modules = VENDOR / "node_modules"
    if not (modules / ".package-lock.json").is_file():
        npm = shutil.which("npm")
        assert npm, "npm (Node.js 20+) is needed to check the vendored static files against their package"
        subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=VENDOR, check=True, timeout=300)
    return modules


def test_package_json_pins_exactly_what_the_lock_file_holds():
    wanted = json.loads((VENDOR / "package.json").read_text())["dependencies"]
    locked = json.loads((VENDOR / "package-lock.json").read_text())["packages"]
    assert wanted == {"uplot": locked["node_modules/uplot"]["version"]}


@pytest.mark.parametrize("vendored", sorted(VENDORED))
def test_vendored_file_is_identical_to_the_npm_package_file(node_modules, vendored):
    assert (VENDOR / vendored).read_bytes() == (node_modules / VENDORED[vendored]).read_bytes()


def test_every_vendored_file_is_checked():
    on_disk = {str(path.relative_to(VENDOR)) for path in VENDOR.rglob("*") if path.is_file()}
    ours = {name for name in on_disk if not name.startswith("node_modules/")} - {"package.json", "package-lock.json"}
    assert ours == set(VENDORED)
