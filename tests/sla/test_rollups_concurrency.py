"""Filling a zone's rollups while tickets are written (sla/rollups.py): the fill's SHARE lock waits for open writers
and every ticket and outcome is counted exactly once, by the fill or by the triggers. Real concurrent transactions on
the committed test database, one connection per thread."""

import threading
import time
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from django.db import OperationalError, transaction
from django.db.models import F, Sum

from sla import reports, rollups
from sla.models import ClockOutcome, OutcomeDay, TicketDay
from tests.conftest import Desk
from tests.sla.dashboard_data import build_history
from tests.sla.test_reports import report_query
from tests.sla.test_rollups import figures
from tests.support import in_thread
from tickets import services as ticket_services
from tickets.models import SatisfactionRating, Ticket

ZONE = "Europe/Berlin"
JOIN_TIMEOUT_SECONDS = 30


def _open_writer(desk: Desk, hold_seconds: float) -> tuple[threading.Thread, dict[str, Any]]:
    """A writer that inserts a ticket, signals, and commits `hold_seconds` later."""
    inserted = threading.Event()

    def write() -> int:
        with transaction.atomic():
            ticket = desk.ticket(title="Written during the fill")
            inserted.set()
            time.sleep(hold_seconds)
        return ticket.pk

    thread, outcome = in_thread(write)
    assert inserted.wait(JOIN_TIMEOUT_SECONDS), outcome
    return thread, outcome


def _created_sum() -> int:
    return TicketDay.objects.filter(zone=ZONE, kind="created").aggregate(n=Sum("tickets"))["n"] or 0


def _finished_sum() -> int:
    return OutcomeDay.objects.filter(zone=ZONE).aggregate(n=Sum("finished"))["n"] or 0


@pytest.mark.django_db(transaction=True)
def test_the_fill_waits_for_an_open_writer_and_counts_its_ticket_once(committed_db, desk) -> None:  # type: ignore[no-untyped-def]
    # given: a committed ticket, and a writer that has inserted another one but not committed yet
    desk.ticket(title="Before the fill")
    thread, outcome = _open_writer(desk, hold_seconds=1.5)
    try:
        # when: the zone is filled meanwhile
        started = time.monotonic()
        filled = rollups.fill_zone(ZONE)
        waited = time.monotonic() - started
    finally:
        thread.join(JOIN_TIMEOUT_SECONDS)
    assert "error" not in outcome, outcome

    # then: the fill waited for the writer's commit and counted both tickets, the writer's exactly once
    assert filled is True
    assert Ticket.objects.filter(pk=outcome["result"]).exists()
    assert Ticket.objects.count() == 2
    assert _created_sum() == 2
    assert rollups.zone_state(ZONE) is True
    assert waited >= 1.0


@pytest.mark.django_db(transaction=True)
def test_tickets_and_outcomes_written_after_the_fill_are_added_by_the_triggers(committed_db, desk) -> None:  # type: ignore[no-untyped-def]
    # given: a history with finished clocks, counted by the fill
    build_history(desk)
    outcomes_before = ClockOutcome.objects.count()
    assert outcomes_before > 0
    assert rollups.fill_zone(ZONE) is True
    assert _created_sum() == Ticket.objects.count()
    assert _finished_sum() == outcomes_before

    # when: another connection creates and resolves a ticket after the fill committed
    def write() -> None:
        ticket = desk.ticket(title="After the fill")
        ticket_services.ticket_transition(actor=desk.agent, ticket=ticket, to_state="resolved")

    thread, outcome = in_thread(write)
    thread.join(JOIN_TIMEOUT_SECONDS)
    assert "error" not in outcome, outcome

    # then: the triggers added them, once
    assert Ticket.objects.count() == 7
    assert _created_sum() == 7
    assert ClockOutcome.objects.count() > outcomes_before
    assert _finished_sum() == ClockOutcome.objects.count()


@pytest.mark.django_db(transaction=True)
def test_the_fill_gives_up_when_a_writer_outlasts_every_attempt(committed_db, desk, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(rollups, "LOCK_ATTEMPTS", 2)
    monkeypatch.setattr(rollups, "LOCK_TIMEOUT", "200ms")
    desk.ticket(title="Before the fill")
    thread, outcome = _open_writer(desk, hold_seconds=2.0)
    try:
        # when: the writer holds its insert open longer than two 200 ms attempts
        with pytest.raises(OperationalError, match="lock timeout"):
            rollups.fill_zone(ZONE)
    finally:
        thread.join(JOIN_TIMEOUT_SECONDS)
    assert "error" not in outcome, outcome

    # then: the zone was not listed, and a later fill counts everything
    assert rollups.zone_state(ZONE) in (None, False)
    assert rollups.fill_zone(ZONE) is True
    assert Ticket.objects.count() == 2
    assert _created_sum() == 2


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("first", ["ticket moves", "rating"])
def test_a_rating_written_while_its_ticket_moves_counts_where_the_ticket_ends(committed_db, desk, first) -> None:  # type: ignore[no-untyped-def]
    # given: the history's T2 is resolved and not rated; the zone is kept
    history = build_history(desk)
    t2 = history.tickets["T2"]
    assert rollups.fill_zone(ZONE)

    def move() -> None:
        Ticket.objects.filter(pk=t2.pk).update(resolved_at=F("resolved_at") + timedelta(days=30))  # out of the view

    def rate() -> None:
        SatisfactionRating.objects.create(ticket=t2, rated_by=desk.requester, score=4)

    holder, other = (move, rate) if first == "ticket moves" else (rate, move)
    written = threading.Event()

    def hold() -> None:
        with transaction.atomic():
            holder()
            written.set()
            time.sleep(1.0)

    # when: one writer changes the ticket or rates it and keeps its transaction open while the other writes, neither
    # through the services (which lock the ticket themselves)
    thread, outcome = in_thread(hold)
    assert written.wait(JOIN_TIMEOUT_SECONDS), outcome
    other()
    thread.join(JOIN_TIMEOUT_SECONDS)
    assert "error" not in outcome, outcome

    # then: the rollups agree with the rows: the rating counts on the ticket's new resolved day (out of the view), not
    # on the day it left
    desk.manager.time_zone = ZONE
    desk.manager.save(update_fields=["time_zone"])
    q = report_query(desk.manager, {"range": "custom", "from": "2026-03-01", "to": "2026-03-08"})
    raw = figures(q)
    assert figures(replace(q, rollups=True)) == raw
    assert raw[3] == reports.Satisfaction(resolved=2, rated=2, average=3.5)
