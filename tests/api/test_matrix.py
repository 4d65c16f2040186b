"""Role-and-scope matrix over every ticket API endpoint: exact status codes, and nothing changed on denied paths.

The ticket is the requester's laptop incident, in the Desktop team (agent's team). Roles: its requester, another
requester, an agent of the team, an agent of another team, a manager (sees, does not work), a security agent, and
nobody signed in. A denied request leaves the ticket, its timeline, comments, attachments, the audit trail and the
ticket count exactly as they were.
"""

from typing import Any

import pytest

from security.models import AuditLog
from security.scopes import ALL_SCOPES, Scope
from tests.api.conftest import api_client
from tests.web.conftest import png
from tickets import services
from tickets.models import Attachment, Comment, IdempotencyKey, Ticket, TicketEvent

ROLES = ("requester", "other_requester", "agent", "network_agent", "manager", "security_agent", "anonymous")


def state_of(ticket: Ticket) -> tuple[Any, ...]:
    ticket.refresh_from_db()
    return (
        Ticket.objects.count(),
        ticket.version,
        ticket.state,
        ticket.priority,
        ticket.assignee_id,
        ticket.team_id,
        Comment.objects.count(),
        Attachment.objects.count(),
        TicketEvent.objects.count(),
        AuditLog.objects.count(),
        IdempotencyKey.objects.count(),
    )


def request(client, method: str, url: str, body: Any = None):  # type: ignore[no-untyped-def]
    if method == "GET":
        return client.get(url)
    if method == "UPLOAD":
        return client.post(url, {"file": png()}, format="multipart")
    return getattr(client, method.lower())(url, body, format="json")


def operations(desk, ticket: Ticket, attachment: Attachment) -> dict[str, tuple[str, str, Any]]:  # type: ignore[no-untyped-def]
    base = f"/api/v1/tickets/{ticket.number}/"
    return {
        "list": ("GET", "/api/v1/tickets/", None),
        "retrieve": ("GET", base, None),
        "events": ("GET", f"{base}events/", None),
        "comments": ("GET", f"{base}comments/", None),
        "attachments": ("GET", f"{base}attachments/", None),
        "download": ("GET", f"/api/v1/attachments/{attachment.pk}/download/", None),
        "create": ("POST", "/api/v1/tickets/", {"title": "Mouse broken", "category": desk.laptop.pk}),
        "update": ("PATCH", base, {"priority": 1, "priority_reason": "CEO laptop"}),
        "transition": ("POST", f"{base}transition/", {"state": "in_progress"}),
        "assign": ("POST", f"{base}assign/", {"assignee": desk.agent2.pk}),
        "reply": ("POST", f"{base}comments/", {"body": "Any news?"}),
        "note": ("POST", f"{base}comments/", {"body": "Check the PSU", "is_internal": True}),
        "upload": ("UPLOAD", f"{base}attachments/", None),
        "categories": ("GET", "/api/v1/categories/", None),
        "teams": ("GET", "/api/v1/teams/", None),
        "users": ("GET", "/api/v1/users/", None),
    }


# Expected status per operation, for the roles in ROLES order.
EXPECTED: dict[str, tuple[int, ...]] = {
    # anonymous: 401 with WWW-Authenticate: Bearer (security/authentication.py), for every operation
    #              requester other  agent  network manager security anonymous
    "list": (200, 200, 200, 200, 200, 200, 401),
    "retrieve": (200, 404, 200, 404, 200, 404, 401),
    "events": (200, 404, 200, 404, 200, 404, 401),
    "comments": (200, 404, 200, 404, 200, 404, 401),
    "attachments": (200, 404, 200, 404, 200, 404, 401),
    "download": (200, 404, 200, 404, 200, 404, 401),
    "create": (201, 201, 201, 201, 201, 201, 401),
    "update": (403, 404, 200, 404, 403, 404, 401),
    "transition": (403, 404, 200, 404, 403, 404, 401),
    "assign": (403, 404, 200, 404, 403, 404, 401),
    # Managers oversee; they do not reply to requesters (the service answers as for a ticket they cannot work).
    "reply": (201, 404, 201, 404, 404, 404, 401),
    "note": (403, 404, 201, 404, 403, 404, 401),
    "upload": (201, 404, 201, 404, 404, 404, 401),
    "categories": (200, 200, 200, 200, 200, 200, 401),
    "teams": (200, 200, 200, 200, 200, 200, 401),
    "users": (200, 200, 200, 200, 200, 200, 401),
}
READS = {"list", "retrieve", "events", "comments", "attachments", "download", "categories", "teams", "users"}


@pytest.fixture
def subject(desk):  # type: ignore[no-untyped-def]
    ticket = desk.ticket()
    attachment = services.attachment_add(actor=desk.requester, ticket=ticket, upload=png())
    return ticket, attachment


@pytest.mark.parametrize("operation", list(EXPECTED))
@pytest.mark.parametrize("role", ROLES)
def test_role_matrix(desk, subject, role: str, operation: str) -> None:  # type: ignore[no-untyped-def]
    ticket, attachment = subject
    user = None if role == "anonymous" else getattr(desk, role)
    method, url, body = operations(desk, ticket, attachment)[operation]
    expected = EXPECTED[operation][ROLES.index(role)]
    before = state_of(ticket)

    response = request(api_client(user), method, url, body)

    assert response.status_code == expected, response.content
    if expected >= 400:
        assert set(response.json()) == {"detail", "code", "fields"}
        assert state_of(ticket) == before
    elif method == "GET":
        assert state_of(ticket) == before


def test_another_teams_ticket_is_the_same_404_as_a_missing_one(desk) -> None:  # type: ignore[no-untyped-def]
    vpn = desk.ticket(title="VPN drops", category=desk.vpn)
    client = api_client(desk.agent)

    forbidden = client.get(f"/api/v1/tickets/{vpn.number}/")
    missing = client.get("/api/v1/tickets/INC-999999/")

    assert forbidden.status_code == missing.status_code == 404
    assert forbidden.json() == missing.json() == {"detail": "No such ticket.", "code": "not_found", "fields": {}}


def test_confidential_ticket_is_404_for_a_manager_and_visible_to_the_security_team(desk) -> None:  # type: ignore[no-untyped-def]
    phishing = desk.ticket(title="Odd mail", category=desk.phishing)

    assert api_client(desk.manager).get(f"/api/v1/tickets/{phishing.number}/").status_code == 404
    assert api_client(desk.agent).get(f"/api/v1/tickets/{phishing.number}/").status_code == 404
    assert api_client(desk.security_agent).get(f"/api/v1/tickets/{phishing.number}/").status_code == 200
    listed = api_client(desk.manager).get("/api/v1/tickets/").json()["results"]
    assert phishing.number not in [row["number"] for row in listed]


# --- token scopes --------------------------------------------------------------------------------------------------

SCOPE_NEEDS: dict[str, set[str]] = {
    **{name: {Scope.TICKETS_READ} for name in READS - {"teams", "users"}},
    "teams": {Scope.DIRECTORY_READ},
    "users": {Scope.DIRECTORY_READ},
    "create": {Scope.TICKETS_WRITE},
    "update": {Scope.TICKETS_WRITE},
    "transition": {Scope.TICKETS_WRITE},
    "assign": {Scope.TICKETS_WRITE},
    "reply": {Scope.TICKETS_WRITE},
    "note": {Scope.TICKETS_WRITE, Scope.COMMENTS_INTERNAL},
    "upload": {Scope.TICKETS_WRITE},
}
SUCCESS = {"create": 201, "reply": 201, "note": 201, "upload": 201}


@pytest.mark.parametrize("operation", list(SCOPE_NEEDS))
@pytest.mark.parametrize(
    "scopes",
    [
        frozenset(),
        frozenset({Scope.TICKETS_READ}),
        frozenset({Scope.TICKETS_WRITE}),
        frozenset({Scope.TICKETS_WRITE, Scope.COMMENTS_INTERNAL}),
        frozenset({Scope.DIRECTORY_READ}),
        ALL_SCOPES,
    ],
    ids=["none", "read", "write", "write+internal", "directory", "all"],
)
def test_scope_matrix_for_an_agent_token(desk, subject, operation: str, scopes: frozenset[str]) -> None:  # type: ignore[no-untyped-def]
    ticket, attachment = subject
    method, url, body = operations(desk, ticket, attachment)[operation]
    granted = SCOPE_NEEDS[operation] <= scopes
    before = state_of(ticket)

    response = request(api_client(desk.agent, scopes), method, url, body)

    if granted:
        assert response.status_code == SUCCESS.get(operation, 200), response.content
    else:
        assert response.status_code == 403, response.content
        assert response.json()["code"] in {"insufficient_scope", "permission_denied"}
        if response.json()["code"] == "insufficient_scope":  # RFC 6750: the challenge names the missing scopes
            challenge = response["WWW-Authenticate"]
            assert challenge.startswith('Bearer realm="api", error="insufficient_scope", scope="'), challenge
            assert set(challenge.split('scope="')[1].rstrip('"').split()) - scopes
        assert state_of(ticket) == before


def test_internal_timeline_entries_need_the_internal_scope(desk, subject) -> None:  # type: ignore[no-untyped-def]
    ticket, _attachment = subject
    services.comment_add(actor=desk.agent, ticket=ticket, body="PSU suspected", is_internal=True)
    services.attachment_add(actor=desk.agent, ticket=ticket, upload=png("internal.png"), is_internal=True)
    url = f"/api/v1/tickets/{ticket.number}/"

    reader = api_client(desk.agent, {Scope.TICKETS_READ})
    insider = api_client(desk.agent, {Scope.TICKETS_READ, Scope.COMMENTS_INTERNAL})
    requester = api_client(desk.requester, ALL_SCOPES)

    def kinds(client):  # type: ignore[no-untyped-def]
        return [event["kind"] for event in client.get(f"{url}events/").json()]

    assert kinds(reader) == ["created", "attachment_added"]
    assert kinds(insider) == ["created", "attachment_added", "note_added", "attachment_added"]
    assert kinds(requester) == ["created", "attachment_added"]
    assert [c["is_internal"] for c in reader.get(f"{url}comments/").json()] == []
    assert [c["is_internal"] for c in insider.get(f"{url}comments/").json()] == [True]
    assert [a["filename"] for a in reader.get(f"{url}attachments/").json()] == ["screen.png"]
    assert [a["filename"] for a in insider.get(f"{url}attachments/").json()] == ["screen.png", "internal.png"]
    internal = Attachment.objects.get(filename="internal.png")
    assert reader.get(f"/api/v1/attachments/{internal.pk}/download/").status_code == 404
    assert insider.get(f"/api/v1/attachments/{internal.pk}/download/").status_code == 200
    assert requester.get(f"/api/v1/attachments/{internal.pk}/download/").status_code == 404


def test_writes_go_through_the_services_with_audit_rows_and_timeline(desk, subject) -> None:  # type: ignore[no-untyped-def]
    ticket, _attachment = subject
    client = api_client(desk.agent)
    audit_before = AuditLog.objects.count()

    response = client.patch(
        f"/api/v1/tickets/{ticket.number}/",
        {"priority": 1, "priority_reason": "CEO laptop", "assignee": desk.agent2.pk},
        format="json",
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["priority"], body["priority_is_overridden"], body["priority_override_reason"]) == (
        1,
        True,
        "CEO laptop",
    )
    assert (body["assignee"], body["state"]) == ({"id": desk.agent2.pk, "full_name": "Bo Agent"}, "assigned")
    assert list(AuditLog.objects.filter(seq__gt=audit_before).order_by("seq").values_list("action", flat=True)) == [
        "ticket.priority",
        "ticket.assign",
    ]
    assert list(ticket.events.order_by("id").values_list("kind", flat=True))[-3:] == [
        "priority_changed",
        "state_changed",
        "assigned",
    ]


def test_update_is_all_or_nothing(desk, subject) -> None:  # type: ignore[no-untyped-def]
    ticket, _attachment = subject
    before = state_of(ticket)

    # The priority change is valid, the assignee is not in the team: neither happens.
    response = api_client(desk.agent).patch(
        f"/api/v1/tickets/{ticket.number}/",
        {"priority": 1, "priority_reason": "CEO laptop", "assignee": desk.network_agent.pk},
        format="json",
    )

    assert response.status_code == 403
    assert response.json()["code"] == "assignee_not_in_team"
    assert state_of(ticket) == before


def test_stale_version_is_a_conflict(desk, subject) -> None:  # type: ignore[no-untyped-def]
    ticket, _attachment = subject
    client = api_client(desk.agent)
    url = f"/api/v1/tickets/{ticket.number}/transition/"
    ticket.refresh_from_db()
    read_version = ticket.version
    assert client.post(url, {"state": "in_progress", "version": read_version}, format="json").status_code == 200
    before = state_of(ticket)

    response = client.post(url, {"state": "resolved", "version": read_version}, format="json")

    assert response.status_code == 409
    assert response.json()["code"] == "stale"
    assert state_of(ticket) == before
