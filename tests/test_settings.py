"""Production settings: refuse to start without a secret key, and pass Django's deployment checklist."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    clean.update(env)
    return subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", *args], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=120
    )


def test_production_refuses_to_start_without_a_secret_key():
    result = _manage("check")

    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is required" in result.stderr


def test_production_settings_pass_the_deployment_checklist():
    result = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DJANGO_SECRET_KEY="a" * 20 + "-Z9x!q@w#e$r%t^y&u*i(o)p_l+k=j-h.g,f;d:s" + "b" * 10,
        DJANGO_ALLOWED_HOSTS="desk.example.org",
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://u:p%40ss@db.example:6543/itsm?sslmode=require", ("itsm", "u", "p@ss", "db.example", "6543")),
        ("postgresql://postgres@127.0.0.1/itsm", ("itsm", "postgres", "", "127.0.0.1", "")),
    ],
)
def test_database_url_is_parsed(url, expected):
    from itsm.env import database_from_url

    config = database_from_url(url)

    assert (config["NAME"], config["USER"], config["PASSWORD"], config["HOST"], config["PORT"]) == expected
