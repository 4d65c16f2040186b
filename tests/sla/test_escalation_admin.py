"""Escalation admin: levels inline on a target's page (linked from the policy page), validated and audited."""

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from security.models import AuditLog
from sla.models import Calendar, Clock, EscalationLevel, SlaPolicy, SlaTarget


@pytest.fixture
def admin_client_for(desk) -> Client:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(desk.admin)
    return client


@pytest.fixture
def target(db) -> SlaTarget:  # type: ignore[no-untyped-def]
    policy = SlaPolicy.objects.create(name="Standard", calendar=Calendar.objects.get(is_24x7=True))
    return SlaTarget.objects.create(
        policy=policy, metric="resolution", p1_seconds=3600, p2_seconds=7200, p3_seconds=14400, p4_seconds=28800
    )


def target_form(target: SlaTarget, levels: list[dict[str, Any]], initial: int = 0) -> dict[str, Any]:
    data: dict[str, Any] = {
        "policy": str(target.policy_id),
        "metric": "resolution",
        "p1_seconds": "3600",
        "p2_seconds": "7200",
        "p3_seconds": "14400",
        "p4_seconds": "28800",
        "pause_states": "pending",
        "warning_percents": "50,75,90",
        "on_reopen": "continue",
        "name": "",
        "start_states": "",
        "stop_states": "resolved",
        "escalation_levels-TOTAL_FORMS": str(len(levels)),
        "escalation_levels-INITIAL_FORMS": str(initial),
    }
    for index, level in enumerate(levels):
        for key, value in level.items():
            data[f"escalation_levels-{index}-{key}"] = value
    return data


def test_the_policy_page_links_to_each_targets_escalations(admin_client_for, target) -> None:  # type: ignore[no-untyped-def]
    response = admin_client_for.get(reverse("admin:sla_slapolicy_change", args=[target.policy_id]))
    assert response.status_code == 200
    assert reverse("admin:sla_slatarget_change", args=[target.pk]) in response.content.decode()


def test_adding_levels_inline_is_audited_with_their_named_users(desk, admin_client_for, target) -> None:  # type: ignore[no-untyped-def]
    url = reverse("admin:sla_slatarget_change", args=[target.pk])
    assert admin_client_for.get(url).status_code == 200

    response = admin_client_for.post(
        url,
        target_form(
            target,
            [
                {"percent": "75", "name": "Nudge", "notify_assignee": "on", "notify_users": [str(desk.agent2.pk)]},
                {
                    "percent": "150",
                    "reassign_team": str(desk.network.pk),
                    "reassign_agent": str(desk.network_agent.pk),
                    "raise_priority_to": "1",
                    "only_working_hours": "on",
                    "notify_team_leads": "on",
                },
            ],
        ),
    )

    assert response.status_code == 302, response.content.decode()[:3000]
    levels = list(
        EscalationLevel.objects.filter(target=target).values_list(
            "percent", "notify_assignee", "reassign_team_id", "reassign_agent_id", "raise_priority_to"
        )
    )
    assert levels == [(75, True, None, None, None), (150, False, desk.network.pk, desk.network_agent.pk, 1)]
    rows = AuditLog.objects.filter(action="escalationlevel.admin_create").order_by("seq")
    assert [(r.actor_id, r.after["percent"], r.after["notify_users"]) for r in rows] == [
        (desk.admin.pk, 75, [desk.agent2.pk]),
        (desk.admin.pk, 150, []),
    ]


@pytest.mark.parametrize(
    ("level", "field", "message"),
    [
        ({"percent": "100"}, "__all__", "Choose at least one action for this level."),
        ({"percent": "100", "notify_users": ["requester"]}, "notify_users", "Only agents can be notified by name"),
        (
            {"percent": "100", "reassign_team": "network", "reassign_agent": "agent"},
            "reassign_agent",
            "The agent is not a member of the team to reassign to.",
        ),
        ({"percent": "0", "notify_managers": "on"}, "percent", "Use 1 to 1000 percent."),
    ],
)
def test_invalid_levels_show_errors_and_save_nothing(desk, admin_client_for, target, level, field, message) -> None:  # type: ignore[no-untyped-def]
    ids = {"requester": desk.requester.pk, "network": desk.network.pk, "agent": desk.agent.pk}
    level = {k: ([str(ids[x]) for x in v] if isinstance(v, list) else str(ids.get(v, v))) for k, v in level.items()}
    before = AuditLog.objects.count()

    response = admin_client_for.post(
        reverse("admin:sla_slatarget_change", args=[target.pk]), target_form(target, [level])
    )

    assert response.status_code == 200
    errors = response.context["inline_admin_formsets"][0].formset.errors[0]
    assert any(message in text for text in errors[field]), errors
    assert not EscalationLevel.objects.exists()
    assert AuditLog.objects.count() == before


def test_changing_and_deleting_a_level_is_audited(desk, admin_client_for, target) -> None:  # type: ignore[no-untyped-def]
    level = EscalationLevel.objects.create(target=target, percent=100, notify_managers=True)
    url = reverse("admin:sla_slatarget_change", args=[target.pk])
    changed = target_form(
        target, [{"id": str(level.pk), "target": str(target.pk), "percent": "120", "notify_managers": "on"}], initial=1
    )
    assert admin_client_for.post(url, changed).status_code == 302
    change = AuditLog.objects.get(action="escalationlevel.admin_change")
    assert (change.before["percent"], change.after["percent"]) == (100, 120)

    deleted = {**changed, "escalation_levels-0-DELETE": "on"}
    assert admin_client_for.post(url, deleted).status_code == 302
    assert not EscalationLevel.objects.exists()
    assert AuditLog.objects.get(action="escalationlevel.admin_delete").before["percent"] == 120


def test_agents_cannot_reach_the_escalation_admin(desk, target) -> None:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(desk.agent)
    response = client.get(reverse("admin:sla_slatarget_change", args=[target.pk]))
    assert response.status_code == 302


def test_changing_a_targets_duration_on_its_page_resets_the_policys_clocks(desk, admin_client_for, target) -> None:  # type: ignore[no-untyped-def]
    # given: a ticket with a running clock on the target
    ticket = desk.ticket()
    old = Clock.objects.get(ticket=ticket, target=target)

    # when: the P3 duration changes on the target's own admin page
    data = target_form(target, [])
    data["p3_seconds"] = "20000"
    response = admin_client_for.post(reverse("admin:sla_slatarget_change", args=[target.pk]), data)

    # then: the old clock is cancelled (never breached); the re-sync task after commit opens its replacement
    assert response.status_code == 302
    old.refresh_from_db()
    assert old.state == Clock.State.CANCELLED
    assert AuditLog.objects.filter(action="sla_policy.clocks_reset").count() == 1
