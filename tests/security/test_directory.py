import pytest
from django.conf import settings as django_settings
from django.contrib.auth import authenticate
from django.db import IntegrityError, transaction

import itsm.settings
from itsm.errors import Conflict, PermissionDenied, ValidationFailed
from security import permissions
from security import services as directory
from security.models import AuditLog, Membership, User
from security.permissions import Access
from tests.factories import MembershipFactory


def _directory_state() -> dict[str, object]:
    return {
        "users": list(User.objects.order_by("pk").values_list("pk", "email", "is_manager")),
        "memberships": list(Membership.objects.order_by("pk").values_list("pk", "user_id", "team_id", "role")),
        "audit": AuditLog.objects.count(),
    }


# --- e-mail addresses ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("email", ["ada@example.org", "ADA@Example.org", "  Ada@EXAMPLE.ORG "])
def test_user_create_refuses_an_address_taken_in_any_case(desk, email):
    before = _directory_state()

    with pytest.raises(Conflict) as refused:
        directory.user_create(actor=desk.admin, email=email, full_name="Ada Twin")

    assert (refused.value.code, refused.value.status_code) == ("email_taken", 409)
    assert _directory_state() == before


def test_user_create_stores_the_address_lower_case(desk):
    user = directory.user_create(actor=desk.admin, email=" Grace.Hopper@Example.ORG ", full_name=" Grace Hopper ")

    user.refresh_from_db()
    assert (user.email, user.full_name, user.has_usable_password()) == (
        "grace.hopper@example.org",
        "Grace Hopper",
        False,
    )


def test_the_database_refuses_an_address_differing_only_in_case(desk):
    with pytest.raises(IntegrityError, match="security_user_email_ci_unique"), transaction.atomic():
        User.objects.create(email="ADA@example.org", full_name="Ada Twin")

    assert User.objects.filter(email__iexact="ada@example.org").count() == 1


def test_user_update_refuses_another_users_address(desk):
    before = _directory_state()

    with pytest.raises(Conflict) as refused:
        directory.user_update(actor=desk.admin, user=desk.agent2, email="Ada@Example.org")

    assert refused.value.code == "email_taken"
    assert _directory_state() == before


def test_user_update_stores_a_new_address_lower_case_so_sign_in_still_works(desk, rf):
    directory.user_update(actor=desk.admin, user=desk.agent2, email=" Bo.Agent@Example.ORG ")

    desk.agent2.refresh_from_db()
    assert desk.agent2.email == "bo.agent@example.org"
    signed_in = authenticate(rf.get("/"), username="Bo.Agent@example.org", password="correct-horse-battery-staple")
    assert signed_in == desk.agent2


@pytest.mark.parametrize("actor", ["agent", "lead", "manager", "security_officer", "requester"])
def test_only_administrators_create_and_change_users(desk, actor):
    before = _directory_state()

    with pytest.raises(PermissionDenied):
        directory.user_create(actor=getattr(desk, actor), email="new@example.org", full_name="New")
    with pytest.raises(PermissionDenied):
        directory.user_update(actor=getattr(desk, actor), user=desk.requester, is_manager=True)

    assert _directory_state() == before


def test_user_update_rejects_unknown_fields(desk):
    before = _directory_state()

    with pytest.raises(ValidationFailed, match="Unknown user fields: password."):
        directory.user_update(actor=desk.admin, user=desk.requester, password="x")

    assert _directory_state() == before


def test_user_create_validates_the_password(desk):
    before = _directory_state()

    with pytest.raises(ValidationFailed) as refused:
        directory.user_create(actor=desk.admin, email="weak@example.org", full_name="Weak", password="password")

    assert refused.value.fields == {
        "password": [
            "This password is too short. It must contain at least 10 characters.",
            "This password is too common.",
        ]
    }
    assert _directory_state() == before


# --- passwords -------------------------------------------------------------------------------------------------------


def test_passwords_are_hashed_with_argon2(desk, settings):
    # given: the project's own hasher list (the test suite swaps in a cheap one for speed)
    settings.PASSWORD_HASHERS = itsm.settings.PASSWORD_HASHERS
    assert django_settings.PASSWORD_HASHERS[0] == "django.contrib.auth.hashers.Argon2PasswordHasher"

    # when
    user = directory.user_create(
        actor=desk.admin, email="kim@example.org", full_name="Kim", password="a-long-and-unusual-phrase"
    )

    # then
    user.refresh_from_db()
    assert user.password.startswith("argon2$argon2id$")
    assert user.check_password("a-long-and-unusual-phrase") is True
    assert user.check_password("A-long-and-unusual-phrase") is False


# --- memberships -----------------------------------------------------------------------------------------------------


def test_membership_set_is_idempotent(desk):
    # given
    first = directory.membership_set(actor=desk.admin, user=desk.other_requester, team=desk.network)
    before = _directory_state()

    # when
    again = directory.membership_set(actor=desk.admin, user=desk.other_requester, team=desk.network)

    # then
    assert (again.pk, again.role) == (first.pk, "agent")
    assert _directory_state() == before


def test_membership_role_change_is_audited(desk):
    head = AuditLog.objects.order_by("-seq").values_list("seq", flat=True).first() or 0

    membership = directory.membership_set(actor=desk.lead, user=desk.agent, team=desk.desktop, role="lead")

    assert membership.role == "lead"
    row = AuditLog.objects.get(seq__gt=head)
    assert (row.action, row.actor_id, row.before["role"], row.after["role"]) == (
        "membership.update",
        desk.lead.pk,
        "agent",
        "lead",
    )


def test_unknown_role_is_refused(desk):
    before = _directory_state()

    with pytest.raises(ValidationFailed) as refused:
        directory.membership_set(actor=desk.admin, user=desk.requester, team=desk.desktop, role="boss")

    assert refused.value.fields == {"role": ["Choose one of agent, lead."]}
    assert _directory_state() == before


@pytest.mark.parametrize(("actor", "team"), [("admin", "network"), ("lead", "desktop")])
def test_admins_and_the_teams_leads_manage_its_members(desk, actor, team):
    membership = directory.membership_set(actor=getattr(desk, actor), user=desk.requester, team=getattr(desk, team))

    assert (membership.user_id, membership.team_id, membership.role) == (
        desk.requester.pk,
        getattr(desk, team).pk,
        "agent",
    )
    assert directory.membership_remove(actor=getattr(desk, actor), user=desk.requester, team=getattr(desk, team))
    assert not Membership.objects.filter(user=desk.requester).exists()


@pytest.mark.parametrize(
    ("actor", "team"),
    [
        ("agent", "desktop"),
        ("lead", "network"),
        ("manager", "desktop"),
        ("security_officer", "security"),
        ("requester", "desktop"),
    ],
)
def test_others_cannot_manage_a_teams_members(desk, actor, team):
    # given
    before = _directory_state()

    # when
    with pytest.raises(PermissionDenied):
        directory.membership_set(actor=getattr(desk, actor), user=desk.requester, team=getattr(desk, team))
    with pytest.raises(PermissionDenied):
        directory.membership_set(actor=getattr(desk, actor), user=desk.agent, team=getattr(desk, team), role="lead")
    with pytest.raises(PermissionDenied):
        directory.membership_remove(actor=getattr(desk, actor), user=desk.agent2, team=getattr(desk, team))

    # then
    assert _directory_state() == before


def test_removing_an_absent_membership_changes_nothing(desk):
    before = _directory_state()

    assert directory.membership_remove(actor=desk.admin, user=desk.requester, team=desk.desktop) is False
    assert _directory_state() == before


# --- cached access ---------------------------------------------------------------------------------------------------


def test_access_for_reads_memberships_once_per_user_object(desk, django_assert_num_queries):
    with django_assert_num_queries(1):
        first = permissions.access_for(desk.lead)
    with django_assert_num_queries(0):
        second = permissions.access_for(desk.lead)

    assert first is second
    assert first == Access(
        team_ids=frozenset({desk.desktop.pk}),
        lead_team_ids=frozenset({desk.desktop.pk}),
        security_team_ids=frozenset(),
    )


def test_access_for_is_stale_until_forget_access(desk):
    # given: access loaded, then a membership added behind the object's back
    assert permissions.access_for(desk.requester).is_agent is False
    MembershipFactory(user=desk.requester, team=desk.security)

    # then: the cached value stands until forgotten
    assert permissions.access_for(desk.requester).is_agent is False
    permissions.forget_access(desk.requester)
    refreshed = permissions.access_for(desk.requester)
    assert (refreshed.team_ids, refreshed.security_team_ids) == (
        frozenset({desk.security.pk}),
        frozenset({desk.security.pk}),
    )


def test_membership_services_forget_the_cached_access(desk):
    assert permissions.is_agent(desk.requester) is False

    directory.membership_set(actor=desk.admin, user=desk.requester, team=desk.network)
    assert permissions.access_for(desk.requester).team_ids == frozenset({desk.network.pk})

    directory.membership_remove(actor=desk.admin, user=desk.requester, team=desk.network)
    assert permissions.access_for(desk.requester).team_ids == frozenset()


def test_a_disabled_user_has_no_access(desk):
    desk.agent.is_active = False
    permissions.forget_access(desk.agent)

    assert permissions.access_for(desk.agent) == Access(frozenset(), frozenset(), frozenset())
