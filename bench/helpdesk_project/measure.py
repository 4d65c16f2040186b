"""Measure django-helpdesk's REST API, for the side-by-side figures of bench/api.py (issue 6).

This file runs inside django-helpdesk's own virtualenv (`bench/helpdesk_api.py` creates it), never in the project's:
it imports nothing from the service desk. It configures a minimal Django project around django-helpdesk with its API
enabled, migrates a PostgreSQL database of its own, fills it with N tickets in one queue, then calls the API in-process
with Django's test client as a superuser (the API's `IsAdminUser`) and prints one JSON object on stdout:

    {"version": "2.6.1", "tickets": N, "endpoints": {"list": {"ms": [...], "queries": q}, ...}}

    python measure.py --database-url postgres://postgres@127.0.0.1:5432/itsm_bench_helpdesk --tickets 10000
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from importlib.metadata import version
from typing import Any
from urllib.parse import urlsplit

import django
from django.conf import settings
from django.urls import URLPattern, URLResolver, include, path

urlpatterns: list[URLPattern | URLResolver] = []  # filled once settings exist (helpdesk.urls reads them on import)

BATCH = 5000


def configure(database_url: str) -> None:
    parts = urlsplit(database_url)
    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench-only-not-secret",  # noqa: S106 - a throwaway benchmark project
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        SITE_ID=1,
        USE_TZ=True,
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": parts.path.lstrip("/"),
                "USER": parts.username or "postgres",
                "PASSWORD": parts.password or "",
                "HOST": parts.hostname or "127.0.0.1",
                "PORT": str(parts.port or 5432),
            }
        },
        INSTALLED_APPS=[
            "django.contrib.admin",
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "django.contrib.messages",
            "django.contrib.staticfiles",
            "django.contrib.sites",
            "django.contrib.humanize",
            "rest_framework",
            "helpdesk",
        ],
        MIDDLEWARE=[
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.middleware.common.CommonMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            "django.contrib.messages.middleware.MessageMiddleware",
        ],
        TEMPLATES=[
            {
                "BACKEND": "django.template.backends.django.DjangoTemplates",
                "APP_DIRS": True,
                "OPTIONS": {
                    "context_processors": [
                        "django.template.context_processors.request",
                        "django.contrib.auth.context_processors.auth",
                        "django.contrib.messages.context_processors.messages",
                    ]
                },
            }
        ],
        STATIC_URL="/static/",
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
        EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
        HELPDESK_TEAMS_MODE_ENABLED=False,
        HELPDESK_API_ENABLED=True,
        REST_FRAMEWORK={
            "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
        },
        LOGGING={"version": 1, "disable_existing_loggers": True},
    )
    django.setup()
    urlpatterns.append(path("", include("helpdesk.urls")))


def seed(tickets: int) -> Any:
    """Fill the database up to `tickets` tickets in one queue (reused when it already has them); return the admin."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from helpdesk.models import Queue, Ticket

    call_command("migrate", verbosity=0, interactive=False)
    user_model = get_user_model()
    admin = user_model.objects.filter(username="bench-admin").first()
    if admin is None:
        admin = user_model.objects.create_superuser("bench-admin", "bench-admin@example.org", "bench")
    queue, _ = Queue.objects.get_or_create(slug="bench", defaults={"title": "Bench", "email_address": "q@example.org"})
    have = Ticket.objects.count()
    while have < tickets:
        size = min(BATCH, tickets - have)
        Ticket.objects.bulk_create(
            Ticket(
                title=f"Bench ticket {have + i}",
                queue=queue,
                description="Printer on floor 3 does not print.",
                submitter_email=f"requester{(have + i) % 500}@example.org",
                status=Ticket.OPEN_STATUS,
                priority=3,
            )
            for i in range(size)
        )
        have += size
        print(f"seeded {have}/{tickets}", file=sys.stderr, flush=True)
    return admin


class QueryCounter:
    """Counts statements as they run (Django's own query log stops at 9,000 entries)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        self.count += 1
        return execute(sql, params, many, context)


def measure(admin: Any, repeat: int) -> dict[str, Any]:
    from django.db import connection
    from django.test import Client
    from helpdesk.models import Queue, Ticket

    client = Client()
    client.force_login(admin)
    some_ticket = Ticket.objects.order_by("-id").values_list("id", flat=True).first()
    queue_id = Queue.objects.get(slug="bench").pk
    calls = {
        "list": lambda: client.get("/api/tickets/"),
        "filtered": lambda: client.get("/api/tickets/?status=1"),
        "detail": lambda: client.get(f"/api/tickets/{some_ticket}/"),
        "create": lambda: client.post(
            "/api/tickets/",
            {
                "queue": queue_id,
                "title": "Bench create",
                "description": "Created by the benchmark.",
                "submitter_email": "bench@example.org",
                "priority": 3,
            },
        ),
    }
    results: dict[str, Any] = {}
    for name, call in calls.items():
        timings = []
        queries = 0
        status = 0
        for _ in range(repeat):
            counter = QueryCounter()
            with connection.execute_wrapper(counter):
                started = time.perf_counter()
                response = call()
                timings.append((time.perf_counter() - started) * 1000)
            queries = counter.count
            status = response.status_code
        results[name] = {"ms": timings, "queries": queries, "status": status}
        print(f"{name}: {min(timings):.0f} ms, {queries} queries, HTTP {status}", file=sys.stderr, flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--tickets", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    configure(args.database_url)
    admin = seed(args.tickets)
    results = measure(admin, args.repeat)
    print(json.dumps({"version": version("django-helpdesk"), "tickets": args.tickets, "endpoints": results}))


if __name__ == "__main__":
    main()
