"""The admin's API tokens and service accounts: every token listed, revocation audited, tokens for service accounts
shown once, service accounts created without a password."""

import re

import pytest
from django.urls import reverse

from security.models import AuditLog, User
from security.tokens import ApiToken, hash_token
from tests.token_support import make_token
from tests.web.conftest import signed_in

SECRET = re.compile(rb'value="(itsm_[0-9a-f]{8}_[0-9A-Za-z]{40})"')


@pytest.fixture
def robot(desk) -> User:  # type: ignore[no-untyped-def]
    client = signed_in(desk.admin)
    response = client.post(
        reverse("admin:security_serviceaccount_add"),
        {"email": "Nagios@Example.org", "full_name": "Nagios", "organisation": "Ops"},
    )
    assert response.status_code == 302
    return User.objects.get(email="nagios@example.org")


def test_admins_create_service_accounts_without_a_password(desk, robot):
    assert robot.is_service_account
    assert not robot.has_usable_password()
    row = AuditLog.objects.get(action="user.admin_create", object_id=str(robot.pk))
    assert row.actor_id == desk.admin.pk
    assert row.after["is_service_account"] is True


def test_the_service_account_list_shows_only_service_accounts(desk, robot):
    response = signed_in(desk.admin).get(reverse("admin:security_serviceaccount_changelist"))

    assert response.status_code == 200
    assert [user.pk for user in response.context["cl"].result_list] == [robot.pk]


def test_the_token_list_shows_everyones_tokens(desk):
    tokens = [make_token(desk.agent).token, make_token(desk.requester).token]

    response = signed_in(desk.admin).get(reverse("admin:security_apitoken_changelist"))

    assert response.status_code == 200
    assert [t.pk for t in response.context["cl"].result_list] == [tokens[1].pk, tokens[0].pk]


@pytest.mark.parametrize("who", ["agent", "lead", "manager", "security_officer"])
def test_non_admins_cannot_reach_the_token_admin(desk, who):
    response = signed_in(getattr(desk, who)).get(reverse("admin:security_apitoken_changelist"))

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_admins_revoke_selected_tokens_and_each_is_audited(desk):
    first, second = make_token(desk.agent), make_token(desk.requester)
    already = make_token(desk.agent2)
    client = signed_in(desk.admin)
    # The page is for one's own tokens only, admins included: they revoke others' tokens here, in the admin.
    assert client.post(f"/security/tokens/{already.token.pk}/revoke/").status_code == 404
    signed_in(desk.agent2).post(f"/security/tokens/{already.token.pk}/revoke/")

    response = client.post(
        reverse("admin:security_apitoken_changelist"),
        {"action": "revoke_selected", "_selected_action": [first.token.pk, second.token.pk, already.token.pk]},
    )

    assert response.status_code == 302
    assert sorted(ApiToken.objects.filter(revoked_by=desk.admin).values_list("pk", flat=True)) == sorted(
        [first.token.pk, second.token.pk]
    )
    assert ApiToken.objects.get(pk=already.token.pk).revoked_by == desk.agent2
    rows = AuditLog.objects.filter(action="api_token.revoke").order_by("seq")
    assert [(row.actor_id, row.object_id) for row in rows] == [
        (desk.agent2.pk, str(already.token.pk)),
        (desk.admin.pk, str(first.token.pk)),
        (desk.admin.pk, str(second.token.pk)),
    ]


def test_admins_create_a_token_for_a_service_account_and_see_it_once(desk, robot):
    client = signed_in(desk.admin)
    data = {"user": robot.pk, "name": "Nagios poller", "scopes": ["tickets:read"], "lifetime_days": "90"}

    response = client.post(reverse("admin:security_apitoken_add"), data)

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"].split(", ")
    (secret,) = SECRET.findall(response.content)
    token = ApiToken.objects.get()
    assert (token.user, token.created_by, token.scopes) == (robot, desk.admin, ["tickets:read"])
    assert token.secret_hash == hash_token(secret.decode())
    assert AuditLog.objects.filter(action="api_token.create", actor=desk.admin).count() == 1
    detail = client.get(reverse("admin:security_apitoken_change", args=[token.pk]))
    assert detail.status_code == 200
    assert secret not in detail.content


@pytest.mark.parametrize(
    ("owner", "scopes", "field"),
    [("agent", ["tickets:read"], "user"), ("robot", ["sla:admin"], "scopes")],
)
def test_admins_cannot_create_tokens_for_people_or_beyond_what_the_account_could_use(desk, robot, owner, scopes, field):
    user = robot if owner == "robot" else getattr(desk, owner)

    response = signed_in(desk.admin).post(
        reverse("admin:security_apitoken_add"),
        {"user": user.pk, "name": "x", "scopes": scopes, "lifetime_days": "90"},
    )

    assert response.status_code == 200
    assert field in response.context["adminform"].form.errors
    assert ApiToken.objects.count() == 0


def test_a_service_account_page_manages_its_team_memberships(desk, robot):
    response = signed_in(desk.admin).get(reverse("admin:security_serviceaccount_change", args=[robot.pk]))

    assert response.status_code == 200
    assert b"memberships-TOTAL_FORMS" in response.content
    assert b'name="password' not in response.content


def test_the_token_list_costs_the_same_queries_at_two_sizes(desk, django_assert_num_queries):
    client = signed_in(desk.admin)
    url = reverse("admin:security_apitoken_changelist")
    make_token(desk.agent)
    client.get(url)  # warm the admin's per-process caches (content types)

    with django_assert_num_queries(5):
        small = client.get(url)
    for number in range(20):
        make_token(desk.agent if number % 2 else desk.requester, name=f"Token {number}")
    with django_assert_num_queries(5):
        large = client.get(url)

    assert (len(small.context["cl"].result_list), len(large.context["cl"].result_list)) == (1, 21)
