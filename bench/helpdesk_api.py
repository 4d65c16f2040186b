"""django-helpdesk's REST API, measured for comparison with ours (issue 6; bench/api.py prints the ratio).

    .venv/bin/python bench/helpdesk_api.py --tickets 10000

The script installs django-helpdesk (pinned below) into a virtualenv of its own, `.bench/helpdesk-venv`, so nothing
of it reaches the project's `.venv`; creates the database `itsm_bench_helpdesk` on the PostgreSQL server named by
`DATABASE_URL` (no other database is touched); and runs `bench/helpdesk_project/measure.py` there, which seeds the
tickets and times the API in-process. It prints the figures and returns them to bench/api.py as a dict.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import venv
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".bench" / "helpdesk-venv"
MEASURE = ROOT / "bench" / "helpdesk_project" / "measure.py"
DATABASE = "itsm_bench_helpdesk"
# What we compare against: the latest django-helpdesk on PyPI when this was written, on our Django and driver.
PACKAGES = ("django-helpdesk==2.6.1", "Django==5.2.19", "psycopg2-binary==2.9.13")
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/itsm"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def ensure_venv() -> Path:
    """Create `.bench/helpdesk-venv` with the pinned packages (once; a stamp file records what it holds)."""
    python = VENV / "bin" / "python"
    stamp = VENV / ".packages"
    wanted = "\n".join(PACKAGES)
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    log(f"installing {', '.join(PACKAGES)} into {VENV.relative_to(ROOT)} ...")
    venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *PACKAGES], check=True)  # noqa: S603 - fixed argv
    stamp.write_text(wanted)
    return python


def database_url(base: str) -> str:
    """`base` with its database name replaced by the helpdesk bench database."""
    parts = urlsplit(base)
    return urlunsplit(parts._replace(path=f"/{DATABASE}"))


def ensure_database(url: str) -> None:
    import psycopg2  # the project's driver; only the server's maintenance database is used to create ours
    from psycopg2 import sql

    parts = urlsplit(url)
    connection = psycopg2.connect(
        dbname="postgres",
        user=parts.username or "postgres",
        password=parts.password or "",
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
    )
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE])
        if cursor.fetchone() is None:
            log(f"creating database {DATABASE}")
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
    connection.close()


def measure_helpdesk(*, tickets: int, repeat: int = 5, base_url: str | None = None) -> dict[str, Any]:
    """Seed django-helpdesk with `tickets` tickets and time its API; returns measure.py's JSON as a dict."""
    python = ensure_venv()
    url = database_url(base_url or os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL))
    ensure_database(url)
    argv = [str(python), str(MEASURE), "--database-url", url, "--tickets", str(tickets), "--repeat", str(repeat)]
    completed = subprocess.run(argv, check=True, stdout=subprocess.PIPE, text=True)  # noqa: S603 - fixed argv
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description="Time django-helpdesk's REST API at N tickets.")
    parser.add_argument("--tickets", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    result = measure_helpdesk(tickets=args.tickets, repeat=args.repeat)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
