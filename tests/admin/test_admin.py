import pytest
from django.urls import reverse

from security.admin import EstimatedCountPaginator
from security.models import AuditLog, Membership, Team, User
from tests.factories import UserFactory
from tickets import services
from tickets.models import Category, Comment, PriorityMatrixEntry, Ticket, TicketEvent

CHANGELISTS = [
    "security_user",
    "security_team",
    "security_membership",
    "security_auditlog",
    "tickets_category",
    "tickets_prioritymatrixentry",
    "tickets_ticket",
    "tickets_ticketevent",
    "tickets_comment",
    "tickets_attachment",
]
STRONG_PASSWORD = "a-long-and-unusual-passphrase-7"


@pytest.fixture
def security_admin(db) -> User:  # type: ignore[no-untyped-def]
    return UserFactory(full_name="Sara Secadmin", email="sara@example.org", is_admin=True, is_security_officer=True)


@pytest.fixture
def tickets(desk) -> dict[str, Ticket]:  # type: ignore[no-untyped-def]
    laptop = desk.ticket(title="Laptop does not boot")
    vpn = desk.ticket(title="VPN drops every hour", category=desk.vpn)
    phishing = desk.ticket(title="Suspicious invoice e-mail", category=desk.phishing)
    services.comment_add(actor=desk.requester, ticket=phishing, body="It came from a strange address.")
    services.comment_add(actor=desk.requester, ticket=laptop, body="It beeps three times.")
    return {"laptop": laptop, "vpn": vpn, "phishing": phishing}


def listed(response) -> list:  # type: ignore[no-untyped-def]
    return list(response.context["cl"].result_list)


@pytest.mark.parametrize("changelist", CHANGELISTS)
def test_every_changelist_loads_for_an_admin(client, desk, tickets, changelist):
    # given
    client.force_login(desk.admin)

    # when
    response = client.get(reverse(f"admin:{changelist}_changelist"))

    # then
    assert response.status_code == 200


@pytest.mark.parametrize("changelist", ["tickets_ticket", "security_user", "security_auditlog"])
def test_non_admins_are_sent_to_the_admin_login(client, desk, changelist):
    # given
    url = reverse(f"admin:{changelist}_changelist")
    client.force_login(desk.lead)

    # when
    response = client.get(url)

    # then
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('admin:login')}?next={url}"


def test_anonymous_visitors_are_sent_to_the_admin_login(client):
    response = client.get(reverse("admin:index"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_ticket_changelist_costs_the_same_queries_at_two_sizes(client, desk, django_assert_num_queries):
    # given
    client.force_login(desk.admin)
    url = reverse("admin:tickets_ticket_changelist")
    for n in range(2):
        desk.ticket(title=f"Small table {n}")
    # session, user, the admin's memberships, estimated count, page, team filter, category filter
    expected = 7

    # when / then
    with django_assert_num_queries(expected):
        small = client.get(url)
    for n in range(25):
        desk.ticket(title=f"Bigger table {n}", category=desk.vpn if n % 2 else desk.laptop)
    with django_assert_num_queries(expected):
        big = client.get(url)
    assert len(listed(small)) == 2
    assert len(listed(big)) == 27


def test_ticket_search_finds_an_exact_number(client, desk, tickets):
    # given
    client.force_login(desk.admin)
    url = reverse("admin:tickets_ticket_changelist")
    vpn = tickets["vpn"]
    digits = int(vpn.number.split("-")[1])

    # when
    exact = client.get(url, {"q": vpn.number})
    short = client.get(url, {"q": f"{vpn.number[:3].lower()}-{digits}"})
    bare = client.get(url, {"q": str(digits)})

    # then
    assert listed(exact) == [vpn]
    assert listed(short) == [vpn]
    assert vpn in listed(bare)


def test_ticket_search_matches_title_words_and_requester_email(client, desk, tickets):
    # given
    client.force_login(desk.admin)
    url = reverse("admin:tickets_ticket_changelist")

    # when
    by_words = client.get(url, {"q": "drops HOUR"})
    by_email = client.get(url, {"q": "RITA@example.org"})
    no_match = client.get(url, {"q": "printer"})

    # then
    assert listed(by_words) == [tickets["vpn"]]
    assert {t.pk for t in listed(by_email)} == {tickets["laptop"].pk, tickets["vpn"].pk}
    assert listed(no_match) == []


def test_ticket_title_search_is_an_ilike_the_trigram_index_can_serve(desk):
    from security.admin import ILikeContains  # noqa: F401 - the lookup under test
    from tickets.admin import ticket_search

    sql = str(ticket_search(Ticket.objects.all(), "boot").query)

    assert '"tickets_ticket"."title" ILIKE %boot%' in sql
    assert "UPPER" not in sql


def test_confidential_tickets_are_hidden_from_an_admin_who_is_not_in_security(client, desk, tickets):
    # given
    client.force_login(desk.admin)
    phishing = tickets["phishing"]

    # when
    ticket_list = client.get(reverse("admin:tickets_ticket_changelist"))
    search = client.get(reverse("admin:tickets_ticket_changelist"), {"q": phishing.number})
    detail = client.get(reverse("admin:tickets_ticket_change", args=[phishing.pk]))
    comments = client.get(reverse("admin:tickets_comment_changelist"))
    events = client.get(reverse("admin:tickets_ticketevent_changelist"))
    audit = client.get(reverse("admin:security_auditlog_changelist"))

    # then
    assert set(listed(ticket_list)) == {tickets["laptop"], tickets["vpn"]}
    assert listed(search) == []
    assert detail.status_code == 302  # "does not exist", like a missing ticket
    assert {c.ticket_id for c in listed(comments)} == {tickets["laptop"].pk}
    assert phishing.pk not in {e.ticket_id for e in listed(events)}
    assert str(phishing.pk) not in {row.object_id for row in listed(audit) if row.object_type == "tickets.ticket"}
    assert b"Suspicious invoice" not in ticket_list.content + comments.content + events.content + audit.content


def test_a_security_officer_admin_sees_confidential_tickets(client, security_admin, tickets):
    # given
    client.force_login(security_admin)
    phishing = tickets["phishing"]

    # when
    ticket_list = client.get(reverse("admin:tickets_ticket_changelist"))
    detail = client.get(reverse("admin:tickets_ticket_change", args=[phishing.pk]))
    audit = client.get(reverse("admin:security_auditlog_changelist"), {"q": f"tickets.ticket:{phishing.pk}"})

    # then
    assert phishing in listed(ticket_list)
    assert detail.status_code == 200
    assert b"Suspicious invoice" in detail.content
    assert {row.action for row in listed(audit)} == {"ticket.create", "ticket.comment"}


def test_tickets_are_read_only_in_the_admin(client, desk, tickets):
    # given
    client.force_login(desk.admin)
    laptop = tickets["laptop"]
    change_url = reverse("admin:tickets_ticket_change", args=[laptop.pk])

    # when
    add = client.get(reverse("admin:tickets_ticket_add"))
    post = client.post(change_url, {"title": "Changed behind the services' back", "state": "closed"})
    delete = client.post(reverse("admin:tickets_ticket_delete", args=[laptop.pk]), {"post": "yes"})
    view = client.get(change_url)

    # then
    assert (add.status_code, post.status_code, delete.status_code, view.status_code) == (403, 403, 403, 200)
    laptop.refresh_from_db()
    assert (laptop.title, laptop.state) == ("Laptop does not boot", "new")
    assert b"Laptop does not boot" in view.content


def test_membership_change_in_the_admin_is_audited(client, desk):
    # given
    client.force_login(desk.admin)
    membership = Membership.objects.get(user=desk.agent, team=desk.desktop)

    # when
    response = client.post(
        reverse("admin:security_membership_change", args=[membership.pk]),
        {"user": desk.agent.pk, "team": desk.desktop.pk, "role": "lead"},
    )

    # then
    assert response.status_code == 302
    membership.refresh_from_db()
    assert membership.role == "lead"
    row = AuditLog.objects.get(action="membership.admin_change")
    assert (row.actor_id, row.object_type, row.object_id) == (desk.admin.pk, "security.membership", str(membership.pk))
    assert row.before == {"user": desk.agent.pk, "team": desk.desktop.pk, "role": "agent"}
    assert row.after == {"user": desk.agent.pk, "team": desk.desktop.pk, "role": "lead"}


def test_saving_a_membership_unchanged_writes_no_audit_row(client, desk):
    # given
    client.force_login(desk.admin)
    membership = Membership.objects.get(user=desk.agent, team=desk.desktop)
    rows = AuditLog.objects.count()

    # when
    response = client.post(
        reverse("admin:security_membership_change", args=[membership.pk]),
        {"user": desk.agent.pk, "team": desk.desktop.pk, "role": "agent"},
    )

    # then
    assert response.status_code == 302
    assert AuditLog.objects.count() == rows


def test_adding_and_removing_members_inline_on_a_team_is_audited(client, desk):
    # given
    client.force_login(desk.admin)
    team = desk.network
    existing = Membership.objects.get(team=team, user=desk.network_agent)
    newcomer = UserFactory(email="nia@example.org", full_name="Nia Newcomer")

    # when
    response = client.post(
        reverse("admin:security_team_change", args=[team.pk]),
        {
            "name": team.name,
            "slug": team.slug,
            "email": "",
            "memberships-TOTAL_FORMS": "2",
            "memberships-INITIAL_FORMS": "1",
            "memberships-MIN_NUM_FORMS": "0",
            "memberships-MAX_NUM_FORMS": "1000",
            "memberships-0-id": existing.pk,
            "memberships-0-team": team.pk,
            "memberships-0-user": desk.network_agent.pk,
            "memberships-0-role": "agent",
            "memberships-0-DELETE": "on",
            "memberships-1-team": team.pk,
            "memberships-1-user": newcomer.pk,
            "memberships-1-role": "lead",
        },
    )

    # then
    assert response.status_code == 302, response.context and response.context["errors"]
    assert list(Membership.objects.filter(team=team).values_list("user__email", "role")) == [
        ("nia@example.org", "lead")
    ]
    created = AuditLog.objects.get(action="membership.admin_create")
    deleted = AuditLog.objects.get(action="membership.admin_delete")
    assert created.after == {"user": newcomer.pk, "team": team.pk, "role": "lead"}
    assert (deleted.object_id, deleted.before) == (
        str(existing.pk),
        {"user": desk.network_agent.pk, "team": team.pk, "role": "agent"},
    )
    assert not AuditLog.objects.filter(action="team.admin_change").exists()  # the team's own fields did not change


def test_creating_a_user_in_the_admin_lowercases_the_email_hashes_with_argon2_and_audits(client, desk, settings):
    # given
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.Argon2PasswordHasher"]
    client.force_login(desk.admin)

    # when
    response = client.post(
        reverse("admin:security_user_add"),
        {
            "email": "  New.Person@Example.ORG ",
            "full_name": "New Person",
            "organisation": "Acme",
            "time_zone": "Europe/Paris",
            "is_manager": "on",
            "password1": STRONG_PASSWORD,
            "password2": STRONG_PASSWORD,
        },
    )

    # then
    assert response.status_code == 302
    user = User.objects.get(email="new.person@example.org")
    assert user.password.startswith("argon2")
    assert user.check_password(STRONG_PASSWORD)
    assert (user.is_manager, user.is_admin) == (True, False)
    row = AuditLog.objects.get(action="user.admin_create")
    assert row.actor_id == desk.admin.pk
    assert row.after is not None
    assert row.after["email"] == "new.person@example.org"
    assert "password" not in row.after


def test_user_admin_refuses_an_email_that_differs_only_in_case(client, desk):
    # given
    client.force_login(desk.admin)

    # when
    response = client.post(
        reverse("admin:security_user_add"),
        {
            "email": "RITA@example.org",
            "full_name": "Rita Again",
            "time_zone": "UTC",
            "password1": STRONG_PASSWORD,
            "password2": STRONG_PASSWORD,
        },
    )

    # then
    assert response.status_code == 200
    assert "email" in response.context["adminform"].form.errors
    assert User.objects.filter(email__iexact="rita@example.org").count() == 1


def test_changing_a_users_flags_and_password_in_the_admin_is_audited(client, desk):
    # given
    client.force_login(desk.admin)
    user = desk.requester

    # when
    changed = client.post(
        reverse("admin:security_user_change", args=[user.pk]),
        {
            "email": user.email,
            "full_name": user.full_name,
            "organisation": "",
            "time_zone": "UTC",
            "is_active": "on",
            "is_security_officer": "on",
            "memberships-TOTAL_FORMS": "0",
            "memberships-INITIAL_FORMS": "0",
            "memberships-MIN_NUM_FORMS": "0",
            "memberships-MAX_NUM_FORMS": "1000",
        },
    )
    password = client.post(
        reverse("admin:auth_user_password_change", args=[user.pk]),
        {"password1": STRONG_PASSWORD, "password2": STRONG_PASSWORD, "usable_password": "true"},
    )

    # then
    assert (changed.status_code, password.status_code) == (302, 302)
    user.refresh_from_db()
    assert user.is_security_officer
    assert user.check_password(STRONG_PASSWORD)
    flags = AuditLog.objects.get(action="user.admin_change")
    assert flags.before is not None
    assert flags.after is not None
    assert (flags.before["is_security_officer"], flags.after["is_security_officer"]) == (False, True)
    secret = AuditLog.objects.get(action="user.admin_password_change")
    assert secret.after == {"password": "set"}
    assert STRONG_PASSWORD not in str(secret.before) + str(secret.after) + user.password


def test_user_search_matches_an_email_prefix_or_exact_address(client, desk):
    # given
    client.force_login(desk.admin)
    url = reverse("admin:security_user_changelist")

    # when
    prefix = client.get(url, {"q": "RI"})
    exact = client.get(url, {"q": "otto@example.org"})
    middle = client.get(url, {"q": "example"})

    # then
    assert listed(prefix) == [desk.requester]
    assert listed(exact) == [desk.other_requester]
    assert listed(middle) == []  # a prefix search: the middle of an address is not looked for


def test_users_cannot_be_deleted_in_the_admin(client, desk):
    client.force_login(desk.admin)

    response = client.post(reverse("admin:security_user_delete", args=[desk.requester.pk]), {"post": "yes"})

    assert response.status_code == 403
    assert User.objects.filter(pk=desk.requester.pk).exists()


def test_audit_log_admin_refuses_add_change_and_delete(client, desk, tickets):
    # given
    client.force_login(desk.admin)
    row = AuditLog.objects.order_by("seq").first()
    assert row is not None
    rows = list(AuditLog.objects.order_by("seq").values_list("seq", "action", "hash"))

    # when
    add = client.get(reverse("admin:security_auditlog_add"))
    change = client.post(reverse("admin:security_auditlog_change", args=[row.pk]), {"action": "forged"})
    delete = client.post(reverse("admin:security_auditlog_delete", args=[row.pk]), {"post": "yes"})
    bulk_delete = client.post(
        reverse("admin:security_auditlog_changelist"),
        {"action": "delete_selected", "_selected_action": [row.pk], "post": "yes"},
    )
    view = client.get(reverse("admin:security_auditlog_change", args=[row.pk]))

    # then
    assert (add.status_code, change.status_code, delete.status_code) == (403, 403, 403)
    assert bulk_delete.status_code in (200, 302)
    assert view.status_code == 200
    assert list(AuditLog.objects.order_by("seq").values_list("seq", "action", "hash")) == rows


def test_audit_log_filters_by_action_and_searches_by_object(client, desk, tickets):
    # given
    client.force_login(desk.admin)
    url = reverse("admin:security_auditlog_changelist")
    laptop = tickets["laptop"]

    # when
    page = client.get(url)
    by_action = client.get(url, {"action": "ticket.comment"})
    by_object = client.get(url, {"q": f"tickets.ticket:{laptop.pk}"})

    # then
    filter_choices = [spec for spec in page.context["cl"].filter_specs if spec.parameter_name == "action"][0]
    assert {"ticket.create", "ticket.comment"} <= {value for value, _ in filter_choices.lookup_choices}
    assert [(r.action, r.object_id) for r in listed(by_action)] == [("ticket.comment", str(laptop.pk))]
    assert [r.action for r in listed(by_object)] == ["ticket.comment", "ticket.create"]


def test_category_and_priority_matrix_changes_are_audited(client, desk):
    # given
    client.force_login(desk.admin)
    cell = PriorityMatrixEntry.objects.get(impact=2, urgency=2)

    # when
    category = client.post(
        reverse("admin:tickets_category_add"),
        {
            "name": "Scanner",
            "slug": "scanner",
            "kind": "hardware",
            "portal_label": "The scanner does not scan",
            "default_type": "incident",
            "default_team": desk.desktop.pk,
            "is_active": "on",
            "sort_order": "5",
        },
    )
    matrix = client.post(reverse("admin:tickets_prioritymatrixentry_change", args=[cell.pk]), {"priority": "2"})
    matrix_add = client.get(reverse("admin:tickets_prioritymatrixentry_add"))

    # then
    assert (category.status_code, matrix.status_code, matrix_add.status_code) == (302, 302, 403)
    scanner = Category.objects.get(slug="scanner")
    created = AuditLog.objects.get(action="category.admin_create")
    assert (created.object_id, created.after["default_team"]) == (str(scanner.pk), desk.desktop.pk)  # type: ignore[index]
    changed = AuditLog.objects.get(action="priority_matrix.admin_change")
    assert (changed.before, changed.after) == (
        {"impact": 2, "urgency": 2, "priority": 3},
        {"impact": 2, "urgency": 2, "priority": 2},
    )


def test_membership_user_picker_searches_by_email_instead_of_listing_everyone(client, desk):
    # given
    client.force_login(desk.admin)

    # when
    response = client.get(
        reverse("admin:autocomplete"),
        {"app_label": "security", "model_name": "membership", "field_name": "user", "term": "ot"},
    )

    # then
    assert response.status_code == 200
    assert [item["id"] for item in response.json()["results"]] == [str(desk.other_requester.pk)]


def test_estimated_paginator_never_counts_past_its_limit(desk, django_assert_max_num_queries):
    # given
    for n in range(6):
        desk.ticket(title=f"Counted {n}")

    class SmallLimit(EstimatedCountPaginator):
        exact_limit = 3

    # when
    with django_assert_max_num_queries(2):
        filtered = SmallLimit(Ticket.objects.filter(title__startswith="Counted").order_by("id"), 2).count
    exact = SmallLimit(Ticket.objects.filter(title="Counted 1").order_by("id"), 2).count
    unfiltered = SmallLimit(Ticket.objects.order_by("id"), 2).count

    # then
    assert exact == 1
    assert filtered >= 4  # the limit + 1, or the planner's estimate when that is higher
    assert unfiltered >= 4


def test_timeline_and_comments_are_read_only(client, desk, tickets):
    # given
    client.force_login(desk.admin)
    event = TicketEvent.objects.filter(ticket=tickets["laptop"]).first()
    comment = Comment.objects.filter(ticket=tickets["laptop"]).first()
    assert event is not None
    assert comment is not None

    # when
    event_post = client.post(reverse("admin:tickets_ticketevent_change", args=[event.pk]), {"kind": "forged"})
    comment_post = client.post(reverse("admin:tickets_comment_change", args=[comment.pk]), {"body": "forged"})

    # then
    assert (event_post.status_code, comment_post.status_code) == (403, 403)
    assert Team.objects.exists()


def test_editing_the_priority_matrix_in_the_list_is_audited_per_changed_cell(client, desk):
    # given
    client.force_login(desk.admin)
    cells = list(PriorityMatrixEntry.objects.order_by("impact", "urgency"))
    data = {
        "form-TOTAL_FORMS": str(len(cells)),
        "form-INITIAL_FORMS": str(len(cells)),
        "form-MIN_NUM_FORMS": "0",
        "form-MAX_NUM_FORMS": "1000",
        "_save": "Save",
    }
    for n, cell in enumerate(cells):
        data[f"form-{n}-id"] = str(cell.pk)
        data[f"form-{n}-priority"] = str(1 if (cell.impact, cell.urgency) == (3, 3) else cell.priority)

    # when
    response = client.post(reverse("admin:tickets_prioritymatrixentry_changelist"), data)

    # then
    assert response.status_code == 302
    assert PriorityMatrixEntry.objects.get(impact=3, urgency=3).priority == 1
    rows = AuditLog.objects.filter(action="priority_matrix.admin_change")
    assert [(row.before, row.after) for row in rows] == [
        ({"impact": 3, "urgency": 3, "priority": 4}, {"impact": 3, "urgency": 3, "priority": 1})
    ]
