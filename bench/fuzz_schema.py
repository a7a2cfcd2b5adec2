"""Fuzz the whole API against its OpenAPI schema with schemathesis, every check, as a staff user and as a key.

gunicorn serves the app (the image's config, production mode) on a fresh PostgreSQL database seeded with a
small fleet. schemathesis' CLI runs every operation of /api/v1/schema/ with `--checks all` and
--max-examples cases per operation, once with a staff JWT and once with a read+ingest API key. Prints,
per kind of caller, the responses that were 5xx and the failures of each check (conformance and others).
Target: 0 and 0.

    .venv/bin/python bench/fuzz_schema.py [--max-examples 200] [--callers jwt,key] [--phases ...]

Uses a fresh database `smartmaint_bench_st` (dropped at the end) on BENCH_SERVER (default
postgresql://postgres@127.0.0.1:5432) and Redis database 11 on 127.0.0.1:6379 (flushed). The NDJSON event
logs stay in bench/results/schemathesis-<caller>.ndjson for a closer look.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import redis
from common import manage, production_env, start_image_gunicorn

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DB = "smartmaint_bench_st"
REDIS_URL = "redis://127.0.0.1:6379/11"
STAFF = ("fuzz-staff", "fuzz-staff-password-1")


def jwt(port: int) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    body = json.dumps({"username": STAFF[0], "password": STAFF[1]})
    conn.request("POST", "/api/v1/auth/token", body=body, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    payload = response.read()
    if response.status != 200:
        raise SystemExit(f"no token: {response.status} {payload[:300]!r}")
    return json.loads(payload)["access"]


def summarise(text: str) -> dict:
    """Operations, cases, 5xx responses and failed checks, from the CLI's report (its summary and failures)."""
    failures: dict[str, int] = {}
    examples: list[str] = []
    operation = ""
    in_summary = False
    for line in text.splitlines():
        if heading := re.fullmatch(r"_+ (\S+ /\S*) _+", line.strip()):
            operation = heading[1]
        elif operation and not in_summary and (check := re.match(r"- (.+)$", line)):
            examples.append(f"{operation}: {check[1]}")
        if line.strip() == "Failures:":
            in_summary = True
        elif in_summary and (found := re.match(r"\s*\S+ (.+): (\d+)$", line)):
            failures[found[1]] = int(found[2])
        elif in_summary and line.strip() and not line.startswith(" "):
            in_summary = False
    tested = re.search(r"Tested: (\d+)", text)
    cases = re.search(r"(\d+) generated", text)
    server_errors = sum(count for title, count in failures.items() if "server error" in title.lower())
    return {
        "operations": int(tested[1]) if tested else 0,
        "cases": int(cases[1]) if cases else 0,
        "responses_5xx": server_errors,
        "failed_checks": failures,
        "examples": sorted(set(examples)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=200)
    parser.add_argument("--callers", default="jwt,key", help="comma-separated: jwt (staff user), key (read_ingest)")
    parser.add_argument("--phases", default="examples,coverage,fuzzing,stateful")
    parser.add_argument("--seed", type=int, default=20261201)
    parser.add_argument("--workers", default="2")
    parser.add_argument("--server", default=os.environ.get("BENCH_SERVER", "postgresql://postgres@127.0.0.1:5432"))
    args = parser.parse_args()

    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    with psycopg.connect(f"{args.server}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB}")
    url = f"{args.server}/{DB}"
    redis.Redis.from_url(REDIS_URL).flushdb()
    env = production_env(
        {k: v for k, v in os.environ.items() if not k.startswith("GUNICORN_")},
        url,
        REDIS_URL=REDIS_URL,
        JWT_ACCESS_MINUTES="1440",
        # Fuzzing the token endpoint with wrong passwords must not lock the fuzzer itself out of everything.
        LOGIN_FAILURE_LIMIT="1000000",
        DJANGO_VAR_DIR=tempfile.mkdtemp(prefix="smartmaint-st-var-"),
        LOG_LEVEL="ERROR",
    )
    result = {"max_examples": args.max_examples, "phases": args.phases, "seed": args.seed, "callers": {}}
    proc = None
    try:
        manage(env, "migrate", "-v0")
        manage(env, "collectstatic", "--no-input", "-v0")
        manage(env, "seed_data", "--sensors", "6", "--readings", "600", "--quiet")
        key = manage(
            env,
            "shell",
            "-v0",
            "-c",
            "from django.contrib.auth.models import User; from sensors.models import APIKey; "
            f"User.objects.create_user({STAFF[0]!r}, password={STAFF[1]!r}, is_staff=True, is_superuser=True); "
            "print(APIKey.objects.create_key(name='fuzz', scope='read_ingest')[1])",
            capture=True,
        ).strip()
        proc, port = start_image_gunicorn(env, stderr=(ROOT / "bench" / "results" / "st-gunicorn.log").open("w"))
        headers = {"jwt": f"Authorization: Bearer {jwt(port)}", "key": f"Authorization: Api-Key {key}"}
        for caller in args.callers.split(","):
            log = out / f"schemathesis-{caller}.ndjson"
            command = [
                str(BIN / "schemathesis"),
                "run",
                f"http://127.0.0.1:{port}/api/v1/schema/",
                "--checks",
                "all",
                "--max-examples",
                str(args.max_examples),
                "--phases",
                args.phases,
                "--seed",
                str(args.seed),
                "--workers",
                args.workers,
                "--suppress-health-check",
                "all",
                "--request-timeout",
                "60",
                "--header",
                headers[caller],
                "--report",
                "ndjson",
                "--report-ndjson-path",
                str(log),
                "--no-color",
            ]
            started = time.perf_counter()
            run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
            (out / f"schemathesis-{caller}.txt").write_text(run.stdout + run.stderr)
            summary = summarise(run.stdout)
            summary["exit_code"] = run.returncode
            summary["seconds"] = round(time.perf_counter() - started, 1)
            result["callers"][caller] = summary
            failed = sum(summary["failed_checks"].values())
            print(
                f"{caller}: {summary['operations']} operations, {summary['cases']} cases in {summary['seconds']} s; "
                f"5xx responses: {summary['responses_5xx']}; failed checks: {failed} {summary['failed_checks']}"
            )
            for example in summary["examples"]:
                print(f"    {example}")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
        with psycopg.connect(f"{args.server}/postgres", autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    (out / "schemathesis.json").write_text(json.dumps(result, indent=2))
    clean = all(
        not c["responses_5xx"] and not c["failed_checks"] and c["operations"] for c in result["callers"].values()
    )
    print(f"target (0 responses 5xx, 0 failed checks): {'met' if clean else 'MISSED'}")
    return 0 if clean else 1


if __name__ == "__main__":
    raise SystemExit(main())
