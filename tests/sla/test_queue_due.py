"""The desk queues' SLA "Due" column and the "Breaching soon" queue (issue 5, "What users see"), with frozen time."""

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html import unescape

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from security import permissions
from sla import selectors
from sla.models import Calendar, Clock, SlaPolicy, SlaTarget
from tests.web.conftest import signed_in
from tickets import services as ticket_services
from tickets.state import PendingReason, TicketState

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
HOUR = 3600
# Session, user, memberships; categories, teams, team members; the rows (clocks joined with their tickets and the
# names); the saved views. The rows carry their own due clock, so no separate "Due" query.
BREACHING_PAGE_QUERIES = 8


def make_policy(name: str = "Standard", **targets: int) -> SlaPolicy:
    """A 24×7 SLA policy with the given targets (metric → seconds, every priority)."""
    policy = SlaPolicy.objects.create(name=name, calendar=Calendar.objects.get(is_24x7=True), precedence=len(name))
    for metric, seconds in (targets or {"resolution": 4 * HOUR}).items():
        SlaTarget.objects.create(
            policy=policy, metric=metric, p1_seconds=seconds, p2_seconds=seconds, p3_seconds=seconds, p4_seconds=seconds
        )
    return policy


@pytest.fixture
def frozen() -> Iterator[time_machine.Traveller]:
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


def rows_of(content: bytes) -> dict[str, str]:
    """Ticket number → the text of its "Due" cell (tags stripped, spaces collapsed)."""
    html = content.decode()
    cells = {}
    for number, row in re.findall(r'<tr data-row-link="/desk/tickets/([A-Z]+-\d+)/">(.*?)</tr>', html, re.S):
        cell = re.search(r'<td class="queue-due">(.*?)</td>', row, re.S)
        assert cell is not None
        cells[number] = " ".join(unescape(re.sub(r"<[^>]+>", " ", cell.group(1))).split())
    return cells


def due_states(content: bytes) -> dict[str, str]:
    """Ticket number → the `data-due-state` of its "Due" cell, for rows that have one."""
    states = {}
    for number, row in re.findall(
        r'<tr data-row-link="/desk/tickets/([A-Z]+-\d+)/">(.*?)</tr>', content.decode(), re.S
    ):
        found = re.search(r'data-due-state="(\w+)"', row)
        if found:
            states[number] = found.group(1)
    return states


def numbers(content: bytes) -> list[str]:
    return re.findall(r'<tr data-row-link="/desk/tickets/([A-Z]+-\d+)/">', content.decode())


def link(response, rel: str) -> str | None:  # type: ignore[no-untyped-def]
    match = re.search(rf'<a href="([^"]+)" rel="{rel}">'.encode(), response.content)
    return match.group(1).decode().replace("&amp;", "&") if match else None


# --- the "Due" column ------------------------------------------------------------------------------------------------


def test_due_column_shows_the_most_urgent_running_clock_in_the_viewers_zone(desk, frozen) -> None:  # type: ignore[no-untyped-def]
    make_policy(first_response=HOUR, resolution=4 * HOUR)
    ticket = desk.ticket(title="Two clocks")
    desk.agent.time_zone = "America/New_York"
    desk.agent.save(update_fields=["time_zone"])
    frozen.shift(timedelta(minutes=20))

    response = signed_in(desk.agent).get("/desk/?queue=team")

    # First response is due at 11:00 UTC = 06:00 EST, 40 minutes from now; resolution (14:00 UTC) is later.
    assert rows_of(response.content) == {ticket.number: "On time in 40 m 2 Mar 06:00 EST"}
    assert due_states(response.content) == {ticket.number: "ok"}
    assert 'title="First response · Standard"' in response.content.decode()
    assert 'data-due-at="2026-03-02T06:00:00-05:00"' in response.content.decode()


def test_due_column_colours_warning_breached_paused_and_no_clock(desk, frozen) -> None:  # type: ignore[no-untyped-def]
    make_policy(resolution=HOUR)
    warned = desk.ticket(title="Warned")
    frozen.shift(timedelta(minutes=10))
    overdue = desk.ticket(title="Overdue")  # created later, but see below: it is the one left running longest
    paused = desk.ticket(title="Paused")
    ticket_services.ticket_assign(actor=desk.agent, ticket=paused, assignee=desk.agent)
    ticket_services.ticket_transition(
        actor=desk.agent, ticket=paused, to_state=TicketState.PENDING, pending_reason=PendingReason.AWAITING_REQUESTER
    )
    SlaPolicy.objects.update(is_active=False)
    no_clock = desk.ticket(title="No policy")
    frozen.shift(timedelta(minutes=25))  # 10:35: Warned is 35 of 60 minutes in (past the 50 % warning)
    Clock.objects.filter(ticket_id=overdue.pk).update(due_at=T0 + timedelta(minutes=30))  # as if retargeted

    response = signed_in(desk.agent).get("/desk/?queue=team")

    assert due_states(response.content) == {
        warned.number: "warning",
        overdue.number: "breached",
        paused.number: "paused",
    }
    cells = rows_of(response.content)
    assert cells[warned.number] == "Warning in 25 m 2 Mar 11:00 UTC"
    assert cells[overdue.number] == "Breached overdue by 5 m 2 Mar 10:30 UTC"
    assert cells[paused.number] == "Paused"
    assert cells[no_clock.number] == "—"


def test_due_column_hides_clocks_of_tickets_seen_only_as_their_requester(desk, frozen) -> None:  # type: ignore[no-untyped-def]
    make_policy(resolution=HOUR)
    own_request = desk.ticket(requester=desk.agent, category=desk.vpn, title="My VPN")  # the network team's ticket

    response = signed_in(desk.agent).get("/desk/?queue=all")

    assert rows_of(response.content) == {own_request.number: "—"}
    assert signed_in(desk.network_agent).get("/desk/?queue=all").status_code == 200
    assert due_states(signed_in(desk.network_agent).get("/desk/?queue=all").content) == {own_request.number: "ok"}


def test_due_for_tickets_is_one_query_whatever_the_clocks(desk, frozen) -> None:  # type: ignore[no-untyped-def]
    make_policy(first_response=HOUR, resolution=4 * HOUR)
    tickets = [desk.ticket(title=f"T{n}") for n in range(3)]
    Clock.objects.filter(ticket=tickets[1], target__metric="first_response").update(
        due_at=T0 + timedelta(hours=5)
    )  # its resolution (14:00) is now the earlier

    permissions.access_for(desk.agent)  # the memberships, read once per request by every page

    with CaptureQueriesContext(connection) as small:
        found = selectors.due_for_tickets(user=desk.agent, tickets=tickets, now=T0)
    with CaptureQueriesContext(connection) as empty:
        nothing = selectors.due_for_tickets(user=desk.agent, tickets=[], now=T0)

    assert len(small.captured_queries) == len(empty.captured_queries) == 1
    assert nothing == {}
    assert {pk: (due.metric_label, due.due_at) for pk, due in found.items()} == {
        tickets[0].pk: ("First response", T0 + timedelta(hours=1)),
        tickets[1].pk: ("Resolution", T0 + timedelta(hours=4)),
        tickets[2].pk: ("First response", T0 + timedelta(hours=1)),
    }
    assert selectors.due_for_tickets(user=desk.requester, tickets=tickets, now=T0) == {}


# --- "Breaching soon" ------------------------------------------------------------------------------------------------


@pytest.fixture
def spread(desk, frozen):  # type: ignore[no-untyped-def]
    """Desktop tickets, resolution 4 h (24×7), created so that at `now` = T0+4h35m one is 35 m overdue and the others
    are due in 15 m, 3 h 15 m and 5 h 15 m (time moves back to `now` after the last one is raised)."""
    make_policy(resolution=4 * HOUR)
    made = {}
    made["breached"] = desk.ticket(title="Already late")  # due T0+4h
    frozen.shift(timedelta(minutes=50))
    made["in_15m"] = desk.ticket(title="Due in 15 minutes")  # due T0+4h50m
    frozen.shift(timedelta(hours=3))
    made["in_3h15m"] = desk.ticket(title="Due in 3 h 15 m")  # due T0+7h50m
    frozen.shift(timedelta(hours=2))
    made["in_5h15m"] = desk.ticket(title="Due in 5 h 15 m")  # due T0+9h50m
    frozen.move_to(T0 + timedelta(hours=4, minutes=35))
    return made


def test_breaching_soon_lists_running_clocks_due_within_the_window_by_due_instant(desk, spread) -> None:  # type: ignore[no-untyped-def]
    client = signed_in(desk.agent)

    default = client.get("/desk/?queue=breaching")
    day = client.get("/desk/?queue=breaching&within=24h")
    hour = client.get("/desk/?queue=breaching&within=1h")

    t = {key: ticket.number for key, ticket in spread.items()}
    assert default.status_code == 200
    assert numbers(default.content) == [t["in_15m"], t["in_3h15m"]]
    assert numbers(day.content) == [t["in_15m"], t["in_3h15m"], t["in_5h15m"]]
    assert numbers(hour.content) == [t["in_15m"]]
    assert rows_of(default.content)[t["in_15m"]] == "Warning in 15 m 2 Mar 14:50 UTC"
    assert b"2 tickets" in default.content
    assert b'aria-current="page">Breaching soon<' in default.content


def test_breached_and_still_open_tickets_have_their_own_filter_and_lead_the_combined_list(desk, spread) -> None:  # type: ignore[no-untyped-def]
    client = signed_in(desk.agent)
    t = {key: ticket.number for key, ticket in spread.items()}

    breached = client.get("/desk/?queue=breaching&show=breached")
    both = client.get("/desk/?queue=breaching&show=both")

    assert numbers(breached.content) == [t["breached"]]
    assert rows_of(breached.content)[t["breached"]] == "Breached overdue by 35 m 2 Mar 14:00 UTC"
    assert numbers(both.content) == [t["breached"], t["in_15m"], t["in_3h15m"]]


def test_resolved_paused_and_cancelled_tickets_are_not_breaching(desk, spread) -> None:  # type: ignore[no-untyped-def]
    ticket_services.ticket_assign(actor=desk.agent, ticket=spread["in_15m"], assignee=desk.agent)
    ticket_services.ticket_transition(
        actor=desk.agent,
        ticket=spread["in_15m"],
        to_state=TicketState.PENDING,
        pending_reason=PendingReason.AWAITING_REQUESTER,
    )
    ticket_services.ticket_transition(actor=desk.agent, ticket=spread["breached"], to_state=TicketState.RESOLVED)

    client = signed_in(desk.agent)

    assert numbers(client.get("/desk/?queue=breaching&show=both&within=24h").content) == [
        spread["in_3h15m"].number,
        spread["in_5h15m"].number,
    ]


def test_a_ticket_is_listed_once_at_its_earliest_clock_in_the_range(desk, frozen) -> None:  # type: ignore[no-untyped-def]
    make_policy(first_response=HOUR, resolution=2 * HOUR)
    ticket = desk.ticket(title="Two clocks")
    frozen.shift(timedelta(minutes=90))  # first response breached 30 m ago; resolution due in 30 m

    client = signed_in(desk.agent)
    soon = client.get("/desk/?queue=breaching")
    both = client.get("/desk/?queue=breaching&show=both")

    assert numbers(soon.content) == numbers(both.content) == [ticket.number]
    assert rows_of(soon.content)[ticket.number] == "Warning in 30 m 2 Mar 12:00 UTC"
    assert rows_of(both.content)[ticket.number] == "Breached overdue by 30 m 2 Mar 11:00 UTC"


def test_breaching_soon_shows_only_what_the_agent_may_see(desk, frozen) -> None:  # type: ignore[no-untyped-def]
    make_policy(resolution=HOUR)
    own_team = desk.ticket(title="Desktop")
    other_team = desk.ticket(category=desk.vpn, title="Network")
    confidential = desk.ticket(category=desk.phishing, title="Phish")
    own_request = desk.ticket(requester=desk.agent, category=desk.vpn, title="Ada's own VPN request")
    frozen.shift(timedelta(minutes=10))

    def listed(user) -> list[str]:  # type: ignore[no-untyped-def]
        response = signed_in(user).get("/desk/?queue=breaching")
        assert response.status_code == 200
        return numbers(response.content)

    assert listed(desk.agent) == [own_team.number]
    assert listed(desk.network_agent) == [other_team.number, own_request.number]
    assert listed(desk.security_agent) == [confidential.number]
    assert listed(desk.security_officer) == [confidential.number]
    assert listed(desk.manager) == [own_team.number, other_team.number, own_request.number]
    # Requesters have no desk: the same 404 as a page that does not exist.
    assert signed_in(desk.requester).get("/desk/?queue=breaching").status_code == 404
    assert signed_in(desk.requester).get("/desk/?queue=breaching&show=both").status_code == 404


def test_breaching_soon_pages_by_keyset_across_tied_due_instants(desk, frozen) -> None:  # type: ignore[no-untyped-def]
    make_policy(resolution=HOUR)
    tickets = [desk.ticket(title=f"Tied {n}") for n in range(3)]
    frozen.shift(timedelta(minutes=5))
    tickets += [desk.ticket(title=f"Later {n}") for n in range(2)]
    client = signed_in(desk.agent)

    first = client.get("/desk/?queue=breaching&size=2")
    second = client.get(link(first, "next"))
    third = client.get(link(second, "next"))
    back = client.get(link(third, "prev"))

    assert numbers(first.content) + numbers(second.content) + numbers(third.content) == [t.number for t in tickets]
    assert link(third, "next") is None
    assert numbers(back.content) == numbers(second.content)


def test_bad_window_show_and_cursor_are_field_errors_not_crashes(desk, spread) -> None:  # type: ignore[no-untyped-def]
    client = signed_in(desk.agent)

    response = client.get("/desk/?queue=breaching&within=99y&show=everything&after=garbage")

    assert response.status_code == 200
    html = response.content.decode()
    assert "Choose a window from the list." in html
    assert "Choose what to show from the list." in html
    assert "That page link is no longer valid" in html
    assert numbers(response.content) == [spread["in_15m"].number, spread["in_3h15m"].number]


def test_breaching_soon_page_queries_do_not_grow_with_the_table(  # type: ignore[no-untyped-def]
    desk, frozen, django_assert_num_queries
) -> None:
    make_policy(first_response=HOUR, resolution=4 * HOUR)
    for n in range(4):
        desk.ticket(title=f"Small {n}")
    client = signed_in(desk.agent)
    client.get("/desk/?queue=breaching")
    frozen.shift(timedelta(minutes=1))

    with django_assert_num_queries(BREACHING_PAGE_QUERIES) as small:
        small_page = client.get("/desk/?queue=breaching&show=both&size=10")
    for n in range(30):
        desk.ticket(title=f"Large {n}", category=desk.vpn if n % 2 else desk.laptop)
    with django_assert_num_queries(BREACHING_PAGE_QUERIES) as large:
        large_page = client.get("/desk/?queue=breaching&show=both&size=10")
    with django_assert_num_queries(BREACHING_PAGE_QUERIES):
        next_page = client.get(link(large_page, "next"))

    assert len(numbers(small_page.content)) == 4
    # 4 + 15 of the 30 (the others are the network team's) = 19 visible, running clocks
    assert (len(numbers(large_page.content)), len(numbers(next_page.content))) == (10, 9)
    for captured in (small, large):
        sql = " ".join(query["sql"] for query in captured.captured_queries)
        assert "OFFSET" not in sql
        assert "COUNT(" not in sql


def test_saved_view_keeps_the_window_and_what_to_show(desk, spread) -> None:  # type: ignore[no-untyped-def]
    client = signed_in(desk.agent)

    response = client.post(
        "/desk/views/", {"name": "Late today", "query": "queue=breaching&within=24h&show=both&sort=title"}
    )

    assert response.status_code == 302
    assert response["Location"] == "/desk/?queue=breaching&within=24h&show=both"
    assert numbers(client.get(response["Location"]).content) == [
        spread[key].number for key in ("breached", "in_15m", "in_3h15m", "in_5h15m")
    ]
