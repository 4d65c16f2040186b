"""A small known service desk history for the dashboard tests, built through the services with frozen time.

24×7 policy "Standard": first response 1 h, resolution 4 h, warnings at 50/75/90 %. The view is Monday 2 to
Wednesday 4 March 2026 (UTC, London is on UTC then), looked at on Wednesday at 12:00.

| ticket | team    | created   | first response          | resolution                                     |
|--------|---------|-----------|-------------------------|------------------------------------------------|
| T1     | desktop | Mon 10:00 | reply 10:30, met 1800 s | resolved 12:00, met 7200 s, closed, rated 5    |
| T2     | desktop | Mon 11:00 | reply 13:00, breached   | resolved 16:00, breached 18000 s               |
| T3     | network | Mon 12:00 | reply 12:15, met 900 s  | pending 13–15, resolved 16:00, met 7200 s      |
|        |         |           |                         | (wall 14400 s), closed, rated 2                |
| T4     | desktop | Tue 09:00 | none: breached Tue 10:00 (timer) | breached Tue 13:00 (timer), open, new  |
| T5     | network | Wed 08:30 | reply 08:40, met 600 s  | in progress, warned 75 % at 11:30: at risk     |
| T6     | desktop | Wed 11:20 | none, warned 50 % only  | running, new                                   |
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import time_machine

from sla import services as sla_services
from sla.models import Calendar, Clock, SlaPolicy, SlaTarget
from tests.conftest import Desk
from tickets import services as ticket_services
from tickets.models import Ticket

MONDAY = datetime(2026, 3, 2, tzinfo=UTC)
NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
HOUR = 3600
PERIOD = {"range": "custom", "from": "2026-03-02", "to": "2026-03-04"}


def at(day: int, hour: float) -> datetime:
    """Day 0 is Monday 2 March 2026, in UTC."""
    return MONDAY + timedelta(days=day, hours=hour)


def standard_policy() -> SlaPolicy:
    # get_or_create: a transactional (browser) test starts from truncated tables, without the built-in calendar
    always, _ = Calendar.objects.get_or_create(is_24x7=True, defaults={"name": "24×7", "time_zone": "UTC"})
    policy = SlaPolicy.objects.create(name="Standard", calendar=always)
    for metric, seconds in ((SlaTarget.Metric.FIRST_RESPONSE, HOUR), (SlaTarget.Metric.RESOLUTION, 4 * HOUR)):
        SlaTarget.objects.create(
            policy=policy, metric=metric, p1_seconds=seconds, p2_seconds=seconds, p3_seconds=seconds, p4_seconds=seconds
        )
    return policy


@dataclass
class History:
    policy: SlaPolicy
    tickets: dict[str, Ticket]


def fire_clocks(ticket: Ticket, now: datetime) -> None:
    for clock_id in Clock.objects.filter(ticket=ticket).values_list("id", flat=True):
        sla_services.clock_fire_due(clock_id=clock_id, now=now)


def build_history(desk: Desk) -> History:
    policy = standard_policy()
    tickets: dict[str, Ticket] = {}
    agent, net = desk.agent, desk.network_agent
    with time_machine.travel(at(0, 10), tick=False) as clock:

        def move(day: int, hour: float) -> None:
            clock.move_to(at(day, hour))

        tickets["T1"] = desk.ticket(title="T1")
        move(0, 10.5)
        ticket_services.comment_add(actor=agent, ticket=tickets["T1"], body="On it")
        move(0, 11)
        tickets["T2"] = desk.ticket(title="T2")
        move(0, 12)
        ticket_services.ticket_transition(actor=agent, ticket=tickets["T1"], to_state="resolved")
        tickets["T3"] = desk.ticket(title="T3", category=desk.vpn)
        move(0, 12.25)
        ticket_services.comment_add(actor=net, ticket=tickets["T3"], body="Looking")
        move(0, 12.5)
        ticket_services.ticket_transition(actor=desk.requester, ticket=tickets["T1"], to_state="closed")
        ticket_services.satisfaction_rate(actor=desk.requester, ticket=tickets["T1"], score=5)
        move(0, 13)
        ticket_services.comment_add(actor=agent, ticket=tickets["T2"], body="Sorry")
        ticket_services.ticket_transition(
            actor=net, ticket=tickets["T3"], to_state="pending", pending_reason="awaiting_requester"
        )
        move(0, 15)
        ticket_services.ticket_transition(actor=net, ticket=tickets["T3"], to_state="in_progress")
        move(0, 16)
        ticket_services.ticket_transition(actor=agent, ticket=tickets["T2"], to_state="resolved")
        ticket_services.ticket_transition(actor=net, ticket=tickets["T3"], to_state="resolved")
        move(0, 17)
        ticket_services.ticket_transition(actor=desk.requester, ticket=tickets["T3"], to_state="closed")
        ticket_services.satisfaction_rate(actor=desk.requester, ticket=tickets["T3"], score=2)
        move(1, 9)
        tickets["T4"] = desk.ticket(title="T4")
        move(1, 14)
        fire_clocks(tickets["T4"], at(1, 14))
        move(2, 8.5)
        tickets["T5"] = desk.ticket(title="T5", category=desk.vpn)
        move(2, 8 + 40 / 60)
        ticket_services.comment_add(actor=net, ticket=tickets["T5"], body="Hello")
        ticket_services.ticket_transition(actor=net, ticket=tickets["T5"], to_state="in_progress")
        move(2, 11 + 20 / 60)
        tickets["T6"] = desk.ticket(title="T6")
        move(2, 12)
        fire_clocks(tickets["T5"], NOW)
        fire_clocks(tickets["T6"], NOW)
    return History(policy=policy, tickets=tickets)
