"""Throwaway PostgreSQL and Redis servers for outage tests: started on free loopback ports, stopped or frozen
(SIGSTOP) by process group, and removed afterwards; and a silent listener, a server that accepts and never
answers. The shared services of the machine are never touched."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import redis

from tests.services import free_port


def _pg_bin() -> Path:
    """The newest PostgreSQL server binaries installed (Debian's layout), or PG_BIN."""
    if os.environ.get("PG_BIN"):
        return Path(os.environ["PG_BIN"])
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda path: int(path.parent.name))
    if not versions:
        raise RuntimeError("No PostgreSQL server binaries under /usr/lib/postgresql; set PG_BIN.")
    return versions[-1]


PG_BIN = _pg_bin()
START_TIMEOUT = 120.0  # seconds: generous, CI's cores are shared and busy


@dataclass
class Server:
    """A server process started in a process group of its own, with its children (PostgreSQL's backends)."""

    proc: subprocess.Popen
    port: int

    def _signal_all(self, signum: int) -> None:
        # PostgreSQL's backends each start a session of their own (setsid): signal the whole family by parent.
        for pid in [self.proc.pid, *_descendants(self.proc.pid)]:
            with suppress(ProcessLookupError):
                os.kill(pid, signum)

    def freeze(self) -> None:
        """Every process of the server stops (SIGSTOP): connections stay open, nothing answers."""
        self._signal_all(signal.SIGSTOP)

    def thaw(self) -> None:
        self._signal_all(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        self.thaw()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._signal_all(signal.SIGKILL)
            self.proc.wait()


def _descendants(root: int) -> list[int]:
    """Every process below ``root``, from /proc (Linux)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # The field after the parenthesised command name: state, then the parent's pid.
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, queue = [], [root]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def _wait(ready, what: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            ready()
            return
        except Exception:
            time.sleep(0.2)
    raise RuntimeError(f"{what} did not start within {START_TIMEOUT:.0f} s:\n{log.read_text()[-3000:]}")


@contextmanager
def throwaway_redis(port: int | None = None) -> Iterator[Server]:
    """A redis-server of its own, on ``port`` (to restart one where the app expects it) or a free one."""
    port = port or free_port()
    workdir = Path(tempfile.mkdtemp(prefix="outage-redis-"))
    log = workdir / "redis.log"
    proc = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        cwd=workdir,
        process_group=0,
    )
    server = Server(proc, port)
    try:
        _wait(lambda: redis.Redis(port=port, socket_timeout=1).ping(), "redis-server", proc, log)
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@contextmanager
def throwaway_postgres() -> Iterator[Server]:
    """A fresh PostgreSQL cluster (trust auth, user postgres), run as the postgres user when we are root."""
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="outage-pg-"))
    as_user = {}
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        account = pwd.getpwnam("postgres")
        os.chown(workdir, account.pw_uid, account.pw_gid)
        as_user = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
    data, log = workdir / "data", workdir / "postgres.log"
    subprocess.run(
        [str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync"],
        check=True,
        capture_output=True,
        **as_user,
    )
    proc = subprocess.Popen(
        [
            str(PG_BIN / "postgres"),
            "-D",
            str(data),
            "-p",
            str(port),
            "-k",
            str(workdir),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
        ],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        process_group=0,
        **as_user,
    )
    server = Server(proc, port)
    try:
        _wait(
            lambda: psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres").close(),
            "postgres",
            proc,
            log,
        )
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@dataclass
class Silent:
    host: str
    port: int
    accepted: list[socket.socket] = field(default_factory=list)


@contextmanager
def silent_listener() -> Iterator[Silent]:
    """A listener that accepts connections and never answers: a hung server (database, SMTP), a proxy or firewall
    that swallows packets. ``accepted`` lists the connections taken so far."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    silent = Silent(*listener.getsockname())
    stop = threading.Event()

    def accept():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                silent.accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield silent
    finally:
        stop.set()
        thread.join()
        for conn in silent.accepted:
            conn.close()
        listener.close()
