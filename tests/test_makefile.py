"""`make test` runs every suite and names each failed one before failing: one failing suite never hides
another (the TimescaleDB suite used to be skipped whenever the Python suite failed). Checked with stand-in
suites layered over the real Makefile, never by running the real suites from inside the suite."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.skipif(not shutil.which("make"), reason="make is not installed")
# This suite itself runs under `make test`: its flags and variables (TEST_SUITES=...) must not leak in.
ENV = {
    key: value for key, value in os.environ.items() if key not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")
}

STAND_INS = """
include {makefile}
suite-fails:
\t@echo ran suite-fails; exit 1
suite-passes:
\t@echo ran suite-passes
suite-collects-no-tests:
\t@echo ran suite-collects-no-tests; exit 5
"""


def make_test(tmp_path, suites: str) -> subprocess.CompletedProcess:
    makefile = tmp_path / "stand-ins.mk"
    makefile.write_text(STAND_INS.format(makefile=ROOT / "Makefile"))
    return subprocess.run(
        ["make", "-f", str(makefile), "test", f"TEST_SUITES={suites}"],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_every_suite_runs_and_each_failure_is_named_before_make_fails(tmp_path):
    result = make_test(tmp_path, "suite-fails suite-passes suite-collects-no-tests")
    assert result.returncode != 0
    for suite in ("suite-fails", "suite-passes", "suite-collects-no-tests"):
        assert f"ran {suite}" in result.stdout, result.stdout
    # pytest's exit status 5 (nothing collected) is a failure, not a pass.
    assert "FAILED: suite-fails suite-collects-no-tests" in result.stderr, result.stderr


def test_make_test_passes_when_every_suite_passes(tmp_path):
    result = make_test(tmp_path, "suite-passes")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all suites passed" in result.stdout


def test_make_test_runs_lint_python_and_timescale_suites():
    dry_run = subprocess.run(["make", "-n", "test"], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=60)
    assert dry_run.returncode == 0, dry_run.stderr
    started = [line.split(": ", 1)[1] for line in dry_run.stdout.splitlines() if line.startswith("=== make test: ")]
    assert started[:3] == ["lint", "test-python", "test-timescale"], dry_run.stdout
    assert "pytest tests/timescale" in dry_run.stdout
    # The Python suite in two processes, each with its own services (tests/parallel.py, tests/test_parallel.py).
    assert "pytest -p tests.parallel --numprocesses=2 --dist=loadfile" in dry_run.stdout
    # CI runs exactly this target and fails on its status.
    assert "make test" in (ROOT / ".ci" / "run").read_text()
