"""Contract test: schemathesis generates requests from the served OpenAPI schema and sends them to the real WSGI app
over a seeded database. Every response must be a non-5xx with a documented status, content type and body shape.

Path parameters and ids in bodies are drawn most of the time from the seeded objects, so generated requests reach
the services (creates, transitions, assignments, comments, uploads) and not only the 404 of an unknown id. At least
1,000 cases run in all.
"""

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.middleware.csrf import _get_new_csrf_string  # type: ignore[attr-defined]
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.web.conftest import png
from tickets import services

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
MIN_CASES = 1000
EXAMPLES_PER_OPERATION = 70


@pytest.fixture
def seeded(desk) -> dict[str, list[Any]]:  # type: ignore[no-untyped-def]
    """Tickets in several states and teams (one confidential), with replies, a note and an attachment."""
    tickets = [desk.ticket(title=f"Printer {n} jams") for n in range(3)]
    services.ticket_assign(actor=desk.agent, ticket=tickets[0], assignee=desk.agent)
    services.ticket_transition(actor=desk.agent, ticket=tickets[1], to_state="in_progress")
    services.comment_add(actor=desk.agent, ticket=tickets[0], body="Looking into it")
    services.comment_add(actor=desk.agent, ticket=tickets[0], body="Toner low", is_internal=True)
    attachment = services.attachment_add(actor=desk.requester, ticket=tickets[0], upload=png())
    tickets.append(desk.ticket(title="VPN down", category=desk.vpn))
    tickets.append(desk.ticket(title="Phishing mail", category=desk.phishing))
    return {
        "number": [ticket.number for ticket in tickets],
        "id": [attachment.pk, desk.laptop.pk, desk.desktop.pk, desk.agent.pk, desk.requester.pk],
        # Ids inside generated bodies: ids in the test database depend on what ran before.
        "category": [desk.laptop.pk, desk.vpn.pk, desk.phishing.pk],
        "team": [desk.desktop.pk, desk.network.pk],
        "assignee": [desk.agent.pk, desk.agent2.pk, desk.network_agent.pk],
        "requester": [desk.requester.pk, desk.agent.pk],
    }


@pytest.fixture
def session(desk) -> dict[str, dict[str, str]]:  # type: ignore[no-untyped-def]
    """A real browser session of a desk agent, with a CSRF token for unsafe methods."""
    client = Client()
    client.force_login(desk.agent)
    csrf = _get_new_csrf_string()
    return {
        "cookies": {"sessionid": client.cookies["sessionid"].value, "csrftoken": csrf},
        "headers": {"X-CSRFToken": csrf},
    }


def test_every_generated_request_gets_a_documented_non_server_error_response(
    seeded, session, settings_override_hosts
) -> None:  # type: ignore[no-untyped-def]
    app = get_wsgi_application()
    schema = schemathesis.openapi.from_wsgi("/api/v1/schema/", app)
    cases = 0
    statuses: dict[str, set[int]] = {}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20

    for operation in operations:

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(), pick=st.integers(0, 9))
        def run(case, pick: int) -> None:  # type: ignore[no-untyped-def]
            nonlocal cases
            cases += 1
            for name in list(case.path_parameters or {}):
                if name in seeded and pick < len(seeded[name]):
                    case.path_parameters[name] = seeded[name][pick]
            if isinstance(case.body, dict):
                for name in list(case.body):
                    if name in seeded and pick < len(seeded[name]) and case.body[name] is not None:
                        case.body[name] = seeded[name][pick]
            response = case.call_and_validate(headers=session["headers"], cookies=session["cookies"], checks=CHECKS)
            statuses.setdefault(case.operation.label, set()).add(response.status_code)

        run()

    assert cases >= MIN_CASES
    # The generated requests reached the services, not only the validation and the 404s.
    for label, status in (
        ("GET /api/v1/tickets/", 200),
        ("GET /api/v1/tickets/{number}/", 200),
        ("GET /api/v1/tickets/{number}/events/", 200),
        ("POST /api/v1/tickets/", 201),
        ("POST /api/v1/tickets/{number}/comments/", 201),
        ("GET /api/v1/attachments/{id}/download/", 200),
    ):
        assert status in statuses[label], (label, statuses[label])


@pytest.fixture
def settings_override_hosts(settings) -> Iterator[None]:  # type: ignore[no-untyped-def]
    # schemathesis' WSGI client sends `Host: localhost`.
    settings.ALLOWED_HOSTS = ["*"]
    # A WSGI request closes the database connection when it ends, which would end the test's transaction; Django's
    # test client does the same as this while it runs a request.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)
