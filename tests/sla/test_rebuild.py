"""`manage.py sla_rebuild` (docs/sla.md "Rebuild"): replaying the ledger agrees with what the engine stored, finds
tampered figures (dry run: reported, nothing written) and repairs them exactly; a second run finds nothing."""

from datetime import UTC, datetime, timedelta
from io import StringIO
from typing import Any

import pytest
import time_machine
from django.core.management import CommandError, call_command

from sla import services
from sla.models import Calendar, Clock, ClockOutcome, SlaTarget
from sla.rebuild import clocks_rebuild
from tickets import services as ticket_services

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
HOUR = 3600


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def stored() -> dict[int, tuple[Any, ...]]:
    figures: dict[int, tuple[Any, ...]] = {}
    for c in Clock.objects.order_by("pk"):
        outcome = ClockOutcome.objects.filter(clock=c).values_list(
            "met", "business_seconds_used", "target_seconds", "finished_at", "is_after_reopen", "team_id"
        )
        figures[c.pk] = (c.state, c.next_deadline_at, c.due_at, c.breached_at, list(outcome))
    return figures


@pytest.fixture
def ledger(desk):  # type: ignore[no-untyped-def]
    """Three tickets: one running after a pause with a fired warning, one resolved late (breached), one reopened."""
    services.policy_create(
        actor=None,
        name="Standard",
        calendar=Calendar.objects.get(is_24x7=True),
        targets=[(SlaTarget.Metric.FIRST_RESPONSE, (HOUR,) * 4), (SlaTarget.Metric.RESOLUTION, (4 * HOUR,) * 4)],
    )
    with time_machine.travel(T0, tick=False) as traveller:
        running, late, reopened = desk.ticket(), desk.ticket(), desk.ticket()
        traveller.move_to(at(0.5))
        ticket_services.comment_add(actor=desk.agent, ticket=running, body="On it")
        traveller.move_to(at(1))
        ticket_services.ticket_transition(
            actor=desk.agent, ticket=running, to_state="pending", pending_reason="awaiting_vendor"
        )
        ticket_services.ticket_transition(actor=desk.agent, ticket=reopened, to_state="resolved")
        traveller.move_to(at(2))
        ticket_services.ticket_transition(actor=desk.agent, ticket=running, to_state="in_progress")
        ticket_services.ticket_transition(actor=desk.agent, ticket=reopened, to_state="in_progress", reason="No")
        traveller.move_to(at(3))
        for c in Clock.objects.filter(ticket=running, state="running"):
            services.clock_fire_due(clock_id=c.pk, now=at(3))
        traveller.move_to(at(6))
        ticket_services.ticket_transition(actor=desk.agent, ticket=late, to_state="resolved")
    return running, late, reopened


NOW = at(6)


def test_the_ledger_replay_agrees_with_the_engine(ledger) -> None:  # type: ignore[no-untyped-def]
    report = clocks_rebuild(dry_run=True, now=NOW)
    assert (report.clocks, report.differences) == (6, [])


def test_dry_run_reports_tampered_figures_and_the_rebuild_repairs_them(ledger) -> None:  # type: ignore[no-untyped-def]
    running, late, reopened = ledger
    truth = stored()
    resolution = Clock.objects.get(ticket=running, target__metric="resolution")
    assert (resolution.due_at, resolution.next_deadline_at) == (at(5), at(4))  # 1 h paused; 50 % warning fired at 3
    late_resolution = Clock.objects.get(ticket=late, target__metric="resolution")
    late_first = Clock.objects.get(ticket=late, target__metric="first_response")
    # tamper: lost deadlines, a breach rewritten as met, an outcome lost, one falsified, one for a running clock
    Clock.objects.filter(pk=resolution.pk).update(next_deadline_at=None, due_at=at(99))
    Clock.objects.filter(pk=late_resolution.pk).update(state="met", breached_at=None)
    ClockOutcome.objects.filter(clock=late_first).delete()
    ClockOutcome.objects.filter(clock=late_resolution).update(met=True, business_seconds_used=1)
    reopened_resolution = Clock.objects.get(ticket=reopened, target__metric="resolution")
    ClockOutcome.objects.create(
        clock=reopened_resolution, met=True, business_seconds_used=1, target_seconds=1, priority=3,
        category_id=reopened.category_id, policy_id=reopened_resolution.target.policy_id, finished_at=at(1),
        metric="resolution", started_at=reopened_resolution.started_at, ticket_type=reopened.type,
    )  # fmt: skip
    tampered = stored()

    out = StringIO()
    with time_machine.travel(NOW, tick=False):
        call_command("sla_rebuild", "--dry-run", "--no-progress", stdout=out)
    assert stored() == tampered  # nothing written
    lines = out.getvalue().splitlines()
    assert f"clock {resolution.pk}: next_deadline_at stored None, ledger says {at(4)!r}" in lines
    assert f"clock {resolution.pk}: due_at stored {at(99)!r}, ledger says {at(5)!r}" in lines
    assert f"clock {late_resolution.pk}: state stored 'met', ledger says 'breached'" in lines
    assert f"clock {late_resolution.pk}: breached_at stored None, ledger says {at(4)!r}" in lines
    assert f"clock {late_resolution.pk}: outcome.met stored True, ledger says False" in lines
    assert f"clock {late_resolution.pk}: outcome.business_seconds_used stored 1, ledger says {6 * HOUR}" in lines
    assert any(line.startswith(f"clock {late_first.pk}: outcome stored None") for line in lines)
    assert any(line.startswith(f"clock {reopened_resolution.pk}: outcome stored ") for line in lines)
    assert lines[-1] == "sla_rebuild: 6 clocks replayed, would repair 8 figures on 4 clocks"

    out = StringIO()
    with time_machine.travel(NOW, tick=False):
        call_command("sla_rebuild", "--no-progress", "--batch-size", "2", stdout=out)
    assert out.getvalue().splitlines()[-1] == "sla_rebuild: 6 clocks replayed, repaired 8 figures on 4 clocks"
    assert stored() == truth
    out = StringIO()
    with time_machine.travel(NOW, tick=False):
        call_command("sla_rebuild", "--no-progress", stdout=out)
    assert out.getvalue().splitlines()[-1] == "sla_rebuild: 6 clocks replayed, repaired 0 figures on 0 clocks"


def test_rebuild_of_one_ticket_touches_only_its_clocks(ledger) -> None:  # type: ignore[no-untyped-def]
    running, late, _reopened = ledger
    Clock.objects.filter(ticket__in=[running, late], target__metric="resolution").update(due_at=None)
    Clock.objects.filter(ticket=late).update(breached_at=None)
    out = StringIO()
    with time_machine.travel(NOW, tick=False):
        call_command("sla_rebuild", "--ticket", running.number.lower(), "--no-progress", stdout=out)
    assert out.getvalue().splitlines()[-1] == "sla_rebuild: 2 clocks replayed, repaired 1 figures on 1 clocks"
    assert Clock.objects.get(ticket=running, target__metric="resolution").due_at == at(5)
    assert Clock.objects.get(ticket=late, target__metric="resolution").breached_at is None  # not repaired


def test_unknown_ticket_is_a_clear_error(ledger) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CommandError, match="No ticket INC-999999"):
        call_command("sla_rebuild", "--ticket", "INC-999999", "--no-progress")


@pytest.mark.parametrize("running", [False, True])
@pytest.mark.parametrize("tickets", [1, 4])
def test_a_rebuild_batch_costs_the_same_queries_whatever_its_size(  # type: ignore[no-untyped-def]
    desk, tickets, running, django_assert_num_queries
) -> None:
    services.policy_create(
        actor=None,
        name="Standard",
        calendar=Calendar.objects.get(is_24x7=True),
        targets=[(SlaTarget.Metric.FIRST_RESPONSE, (HOUR,) * 4), (SlaTarget.Metric.RESOLUTION, (4 * HOUR,) * 4)],
    )
    with time_machine.travel(T0, tick=False):
        for _ in range(tickets):
            ticket = desk.ticket()
            if not running:
                ticket_services.ticket_transition(actor=desk.agent, ticket=ticket, to_state="resolved")
    # clocks, segments, threshold events, outcomes, the calendar with its ranges and holidays, savepoint + release;
    # with running clocks their targets' escalation levels, once for the batch
    with django_assert_num_queries(10 if running else 9):
        report = clocks_rebuild(dry_run=True, now=NOW)
    assert (report.clocks, report.differences) == (2 * tickets, [])


def test_rebuild_restores_the_policies_a_ticket_had_clocks_of(ledger) -> None:  # type: ignore[no-untyped-def]
    """`Ticket.sla_policy_ids` (the dashboards' policy filter) is derived from the clocks: a lost entry is reported
    by a dry run and restored by a run, once per ticket and policy."""
    from tickets.models import Ticket

    running, late, _reopened = ledger
    before = {ticket.pk: ticket.sla_policy_ids for ticket in Ticket.objects.all()}
    assert all(before.values())
    Ticket.objects.filter(pk__in=[running.pk, late.pk]).update(sla_policy_ids=[])
    out = StringIO()
    with time_machine.travel(NOW, tick=False):
        call_command("sla_rebuild", "--dry-run", "--no-progress", stdout=out)
    policy_lines = [line for line in out.getvalue().splitlines() if "ticket.sla_policy_ids" in line]
    assert len(policy_lines) == 2  # one per ticket (each has two clocks of the same policy)
    assert Ticket.objects.get(pk=running.pk).sla_policy_ids == []
    with time_machine.travel(NOW, tick=False):
        call_command("sla_rebuild", "--no-progress", stdout=StringIO())
    assert {ticket.pk: ticket.sla_policy_ids for ticket in Ticket.objects.all()} == before
