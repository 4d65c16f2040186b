"""API tokens: hash-only storage, the service rules, Bearer authentication, revocation, expiry, last-used throttling,
and scopes that narrow (never widen) what the token's user may see, against the SLA endpoints."""

import hashlib
import re
from datetime import UTC, datetime, time, timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from itsm.errors import PermissionDenied, ValidationFailed
from security import permissions, services, token_services
from security.models import AuditLog, Membership, User
from security.tokens import ApiToken, hash_token
from sla import services as sla_services
from sla.models import Calendar
from tests.token_support import bearer, make_token
from tests.web.conftest import signed_in

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
INVALID = {"detail": "The API token is invalid, expired or revoked.", "code": "invalid_token", "fields": {}}
INSUFFICIENT = {"detail": "This token lacks the scope this endpoint needs.", "code": "insufficient_scope", "fields": {}}
DUE_PARAMS = {"start": "2026-03-27T16:00:00Z", "seconds": 3600}


@pytest.fixture
def calendar(db) -> Calendar:  # type: ignore[no-untyped-def]
    return sla_services.calendar_create(
        actor=None, name="London office", time_zone="Europe/London", ranges=[(d, time(9), time(17)) for d in range(5)]
    )


def due_url(calendar: Calendar) -> str:
    return f"/api/v1/calendars/{calendar.pk}/due/"


def audit_rows(action: str) -> list[AuditLog]:
    return list(AuditLog.objects.filter(action=action).order_by("seq"))


# --- storage --------------------------------------------------------------------------------------------------------


def test_the_token_string_has_a_recognisable_format_and_only_its_hash_is_stored(desk):
    created = make_token(desk.agent, "tickets:read", "sla:read", name="Nagios")

    match = re.fullmatch(r"itsm_([0-9a-f]{8})_([0-9A-Za-z]{40})", created.secret)
    assert match is not None
    row = ApiToken.objects.get(pk=created.token.pk)
    assert row.prefix == match.group(1)
    assert row.secret_hash == hashlib.sha256(created.secret.encode()).hexdigest()
    assert row.scopes == ["sla:read", "tickets:read"]
    # Nothing in the token table or the audit trail holds the string or its secret part.
    with connection.cursor() as cursor:
        cursor.execute("SELECT row_to_json(t)::text FROM security_apitoken t")
        tables = [text for (text,) in cursor.fetchall()]
        cursor.execute("SELECT row_to_json(a)::text FROM security_auditlog a")
        tables += [text for (text,) in cursor.fetchall()]
    assert all(match.group(2) not in text for text in tables)
    assert all(created.secret not in text for text in tables)


def test_two_tokens_get_different_prefixes_and_secrets(desk):
    first, second = make_token(desk.agent), make_token(desk.agent)

    assert first.token.prefix != second.token.prefix
    assert first.secret != second.secret


def test_creation_is_audited_without_the_secret_or_its_hash(desk):
    with time_machine.travel(T0, tick=False):
        created = make_token(desk.agent, "tickets:read", name="Nagios")

    (row,) = audit_rows("api_token.create")
    assert (row.actor_id, row.object_type, row.object_id) == (desk.agent.pk, "security.apitoken", str(created.token.pk))
    assert row.before is None
    assert row.after == {
        "user": desk.agent.pk,
        "name": "Nagios",
        "prefix": created.token.prefix,
        "scopes": ["tickets:read"],
        "expires_at": "2026-04-01T10:00:00Z",
        "revoked_at": None,
    }
    assert created.token.secret_hash not in str(row.after)


# --- creation rules -------------------------------------------------------------------------------------------------

ALL_BUT_ADMIN = {"tickets:read", "tickets:write", "comments:internal", "sla:read", "directory:read", "webhooks:manage"}


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        ("requester", {"tickets:read", "tickets:write"}),
        ("agent", ALL_BUT_ADMIN),
        ("lead", ALL_BUT_ADMIN),
        ("manager", ALL_BUT_ADMIN),
        ("security_officer", ALL_BUT_ADMIN),
        ("admin", {"tickets:read", "tickets:write", "sla:read", "directory:read", "webhooks:manage", "sla:admin"}),
    ],
)
def test_grantable_scopes_follow_what_the_user_could_do_in_the_browser(desk, role, expected):
    assert permissions.token_grantable_scopes(getattr(desk, role)) == expected


@pytest.mark.parametrize(
    ("scopes", "code"),
    [
        (["comments:internal"], "scope_not_grantable"),
        (["sla:read"], "scope_not_grantable"),
        (["tickets:read", "tickets:delete"], "unknown_scope"),
        ([], "validation_failed"),
    ],
)
def test_a_requester_cannot_grant_scopes_they_could_not_use(desk, scopes, code):
    with pytest.raises(ValidationFailed) as caught:
        make_token(desk.requester, *scopes) if scopes else token_services.token_create(
            actor=desk.requester, owner=desk.requester, name="x", scopes=[], expires_at=T0.replace(year=2099)
        )

    assert caught.value.code == code
    assert ApiToken.objects.count() == 0
    assert AuditLog.objects.filter(action="api_token.create").count() == 0


@pytest.mark.parametrize(
    ("delta", "field"), [(timedelta(seconds=-1), "expires_at"), (timedelta(days=367), "expires_at")]
)
def test_the_expiry_must_be_in_the_future_and_within_the_maximum_lifetime(desk, delta, field):
    with time_machine.travel(T0, tick=False), pytest.raises(ValidationFailed) as caught:
        make_token(desk.agent, expires_at=T0 + delta)

    assert list(caught.value.fields) == [field]
    assert ApiToken.objects.count() == 0


def test_nobody_creates_tokens_for_another_person_not_even_an_admin(desk):
    for actor in (desk.agent2, desk.admin):
        with pytest.raises(PermissionDenied):
            make_token(desk.agent, actor=actor)
    assert ApiToken.objects.count() == 0


def test_admins_create_tokens_for_service_accounts_and_nobody_else_does(desk):
    robot = token_services.service_account_create(actor=desk.admin, email="Nagios@Example.org", full_name="Nagios")

    with pytest.raises(PermissionDenied):
        make_token(robot, actor=desk.agent)
    created = make_token(robot, "tickets:read", actor=desk.admin)

    assert (created.token.user, created.token.created_by) == (robot, desk.admin)
    assert robot.is_service_account
    assert not robot.has_usable_password()
    assert audit_rows("user.create")[-1].after["is_service_account"] is True


# --- authentication -------------------------------------------------------------------------------------------------


def test_a_valid_token_authenticates_as_its_user(desk, calendar):
    created = make_token(desk.agent, "sla:read")

    response = bearer(created.secret).get(due_url(calendar), DUE_PARAMS)

    assert response.status_code == 200
    assert response.json() == {"due_at": "2026-03-27T17:00:00Z"}
    assert response.wsgi_request.user == desk.agent


def test_the_token_is_found_by_its_prefix_with_one_indexed_query(desk, calendar):
    for _ in range(5):
        make_token(desk.agent2, "sla:read")
    created = make_token(desk.agent, "sla:read")

    with CaptureQueriesContext(connection) as queries:
        bearer(created.secret).get(due_url(calendar), DUE_PARAMS)

    token_queries = [q["sql"] for q in queries.captured_queries if 'FROM "security_apitoken"' in q["sql"]]
    assert len(token_queries) == 1
    assert f'"security_apitoken"."prefix" = \'{created.token.prefix}\'' in token_queries[0]


def _expired(desk):  # type: ignore[no-untyped-def]
    with time_machine.travel(T0 - timedelta(days=2), tick=False):
        return make_token(desk.agent, "sla:read", expires_at=T0 - timedelta(days=1)).secret


def _revoked(desk):  # type: ignore[no-untyped-def]
    created = make_token(desk.agent, "sla:read")
    token_services.token_revoke(actor=desk.agent, token=created.token)
    return created.secret


def _wrong_secret(desk):  # type: ignore[no-untyped-def]
    secret = make_token(desk.agent, "sla:read").secret
    return secret[:-1] + ("a" if secret[-1] != "a" else "b")


def _inactive_user(desk):  # type: ignore[no-untyped-def]
    secret = make_token(desk.agent, "sla:read").secret
    services.user_update(actor=desk.admin, user=desk.agent, is_active=False)
    return secret


@pytest.mark.parametrize(
    "make_header",
    [
        pytest.param(lambda desk: "Bearer itsm_0000_short", id="malformed"),
        pytest.param(lambda desk: "Bearer " + "itsm_deadbeef_" + "A" * 40, id="unknown-prefix"),
        pytest.param(lambda desk: "Bearer " + _wrong_secret(desk), id="wrong-secret"),
        pytest.param(lambda desk: "Bearer " + _expired(desk), id="expired"),
        pytest.param(lambda desk: "Bearer " + _revoked(desk), id="revoked"),
        pytest.param(lambda desk: "Bearer " + _inactive_user(desk), id="inactive-user"),
        pytest.param(lambda desk: "Bearer", id="no-token"),
        pytest.param(lambda desk: "Bearer a b", id="two-words"),
    ],
)
def test_a_bad_token_is_a_401_with_the_standard_body_and_www_authenticate(desk, calendar, make_header):
    header = make_header(desk)
    before = list(ApiToken.objects.order_by("pk").values())

    with time_machine.travel(T0, tick=False):
        response = bearer("").get(due_url(calendar), DUE_PARAMS, HTTP_AUTHORIZATION=header)

    assert response.status_code == 401
    assert response.json() == INVALID
    assert response["WWW-Authenticate"] == 'Bearer realm="api", error="invalid_token"'
    assert list(ApiToken.objects.order_by("pk").values()) == before  # not even last_used_at moved


def test_no_credentials_is_a_401_that_asks_for_a_bearer_token(db, calendar):
    response = bearer("").get(due_url(calendar), DUE_PARAMS, HTTP_AUTHORIZATION="")

    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_revocation_takes_effect_on_the_next_request(desk, calendar):
    created = make_token(desk.agent, "sla:read")
    client = bearer(created.secret)
    assert client.get(due_url(calendar), DUE_PARAMS).status_code == 200

    with time_machine.travel(T0, tick=False):
        revoked = token_services.token_revoke(actor=desk.agent, token=created.token)

    response = client.get(due_url(calendar), DUE_PARAMS)
    assert response.status_code == 401
    assert response.json() == INVALID
    assert revoked.revoked_by == desk.agent
    (row,) = audit_rows("api_token.revoke")
    assert revoked.revoked_at == T0
    assert (row.actor_id, row.before["revoked_at"], row.after["revoked_at"]) == (
        desk.agent.pk,
        None,
        "2026-03-02T10:00:00Z",
    )


def test_revoking_twice_changes_nothing_and_someone_elses_token_is_not_found(desk):
    created = make_token(desk.agent)
    token_services.token_revoke(actor=desk.agent, token=created.token)
    first = ApiToken.objects.get(pk=created.token.pk).revoked_at

    token_services.token_revoke(actor=desk.agent, token=created.token)
    other = make_token(desk.agent2)
    with pytest.raises(Exception, match="No such token"):
        token_services.token_revoke(actor=desk.agent, token=other.token)

    assert ApiToken.objects.get(pk=created.token.pk).revoked_at == first
    assert ApiToken.objects.get(pk=other.token.pk).revoked_at is None
    assert len(audit_rows("api_token.revoke")) == 1


def test_admins_revoke_anyones_token(desk):
    created = make_token(desk.agent)

    token_services.token_revoke(actor=desk.admin, token=created.token)

    assert ApiToken.objects.get(pk=created.token.pk).revoked_by == desk.admin


def test_a_token_expires_at_its_expiry_instant(desk, calendar):
    with time_machine.travel(T0, tick=False):
        created = make_token(desk.agent, "sla:read", expires_at=T0 + timedelta(hours=1))
    client = bearer(created.secret)

    with time_machine.travel(T0 + timedelta(minutes=59, seconds=59), tick=False):
        assert client.get(due_url(calendar), DUE_PARAMS).status_code == 200
    with time_machine.travel(T0 + timedelta(hours=1), tick=False):
        assert client.get(due_url(calendar), DUE_PARAMS).status_code == 401


def test_last_used_is_written_at_most_once_a_minute(desk, calendar):
    with time_machine.travel(T0, tick=False):
        created = make_token(desk.agent, "sla:read")
    client = bearer(created.secret)
    assert ApiToken.objects.get(pk=created.token.pk).last_used_at is None

    def call_at(moment: datetime) -> list[str]:
        with time_machine.travel(moment, tick=False), CaptureQueriesContext(connection) as queries:
            assert client.get(due_url(calendar), DUE_PARAMS).status_code == 200
        return [q["sql"] for q in queries.captured_queries if q["sql"].startswith("UPDATE")]

    assert len(call_at(T0 + timedelta(seconds=5))) == 1
    assert ApiToken.objects.get(pk=created.token.pk).last_used_at == T0 + timedelta(seconds=5)
    assert call_at(T0 + timedelta(seconds=30)) == []
    assert call_at(T0 + timedelta(seconds=64)) == []
    assert ApiToken.objects.get(pk=created.token.pk).last_used_at == T0 + timedelta(seconds=5)
    assert len(call_at(T0 + timedelta(seconds=65))) == 1
    assert ApiToken.objects.get(pk=created.token.pk).last_used_at == T0 + timedelta(seconds=65)


# --- scopes narrow, the user's own access bounds --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scopes", "statuses"),
    [
        (("sla:read",), [200, 200, 403]),  # a ticket's clocks are ticket data too: they also need tickets:read
        (("sla:read", "tickets:read"), [200, 200, 200]),
        (("tickets:read", "tickets:write"), [403, 403, 403]),
    ],
)
def test_the_sla_endpoints_need_the_sla_read_scope(desk, calendar, scopes, statuses):
    ticket = desk.ticket()
    client = bearer(make_token(desk.agent, *scopes).secret)

    responses = [
        client.get(due_url(calendar), DUE_PARAMS),
        client.get(f"/api/v1/calendars/{calendar.pk}/business-seconds/", {**DUE_PARAMS, "end": "2026-03-30T10:00Z"}),
        client.get(f"/api/v1/tickets/{ticket.number}/sla/"),
    ]

    assert [r.status_code for r in responses] == statuses
    assert all(r.json() == INSUFFICIENT for r in responses if r.status_code == 403)


@pytest.mark.parametrize("role", ["agent", "network_agent", "security_agent", "manager", "requester"])
@pytest.mark.parametrize("category", ["laptop", "vpn", "phishing"])
def test_a_token_never_sees_a_ticket_its_user_could_not(desk, role, category):
    user = getattr(desk, role)
    ticket = desk.ticket(category=getattr(desk, category))
    url = f"/api/v1/tickets/{ticket.number}/sla/"
    # Injected directly: even a row that claims every scope is bounded by its user.
    token = make_token(user, "tickets:read")
    ApiToken.objects.filter(pk=token.token.pk).update(scopes=["sla:read", "tickets:read"])

    by_session = signed_in(user).get(url)
    by_token = bearer(token.secret).get(url)

    if role == "requester":  # the session gets the requester's 404; the token may not even hold sla:read
        assert (by_session.status_code, by_token.status_code) == (404, 403)
    else:
        assert by_token.status_code == by_session.status_code
        assert by_token.json() == by_session.json()
    expected_visible = {
        ("agent", "laptop"),
        ("network_agent", "vpn"),
        ("security_agent", "phishing"),
        ("manager", "laptop"),
        ("manager", "vpn"),
    }
    assert (by_session.status_code == 200) == ((role, category) in expected_visible)


def test_a_user_who_loses_their_role_loses_the_scopes_that_came_with_it(desk, calendar):
    client = bearer(make_token(desk.network_agent, "sla:read").secret)
    assert client.get(due_url(calendar), DUE_PARAMS).status_code == 200

    services.membership_remove(actor=desk.admin, user=desk.network_agent, team=desk.network)

    response = client.get(due_url(calendar), DUE_PARAMS)
    assert response.status_code == 403
    assert response.json() == INSUFFICIENT
    # RFC 6750 §3.1: the challenge names what is missing
    assert response["WWW-Authenticate"] == 'Bearer realm="api", error="insufficient_scope", scope="sla:read"'


def test_a_service_account_sees_what_its_team_memberships_show(desk):
    robot = token_services.service_account_create(actor=desk.admin, email="mon@example.org", full_name="Monitoring")
    services.membership_set(actor=desk.admin, user=robot, team=desk.network, role=Membership.Role.AGENT)
    client = bearer(make_token(robot, "sla:read", "tickets:read", actor=desk.admin).secret)
    vpn, laptop = desk.ticket(category=desk.vpn), desk.ticket(category=desk.laptop)

    assert client.get(f"/api/v1/tickets/{vpn.number}/sla/").status_code == 200
    assert client.get(f"/api/v1/tickets/{laptop.number}/sla/").status_code == 404


def test_a_service_account_cannot_sign_in_to_the_browser(client, desk):
    robot = token_services.service_account_create(actor=desk.admin, email="mon@example.org", full_name="Monitoring")
    User.objects.filter(pk=robot.pk).update(password=desk.agent.password)  # even with a password set by hand

    response = client.post(
        "/accounts/login/", {"username": "mon@example.org", "password": "correct-horse-battery-staple"}
    )

    assert response.status_code == 200
    assert response.context["form"].non_field_errors() == ["The e-mail address or the password is not correct."]
    assert "_auth_user_id" not in client.session


def test_the_token_secret_hash_helper_is_sha256(db):
    assert hash_token("itsm_x") == hashlib.sha256(b"itsm_x").hexdigest()


def test_round_robin_never_hands_tickets_to_a_service_account(desk):
    robot = token_services.service_account_create(actor=desk.admin, email="mon@example.org", full_name="Monitoring")
    services.membership_set(actor=desk.admin, user=robot, team=desk.desktop)
    desk.desktop.auto_assign = True
    desk.desktop.save(update_fields=["auto_assign"])

    assignees = [desk.ticket(title=f"T{n}").assignee_id for n in range(6)]

    assert robot.pk not in assignees
    assert set(assignees) == {desk.agent.pk, desk.agent2.pk, desk.lead.pk}
