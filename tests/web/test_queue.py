"""The desk queue (`/desk/`): queues, filters, full-text search, sorting with keyset pages, bulk changes, saved
views, bad input and query counts."""

import datetime as dt
import re
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import time_machine
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from security import permissions
from security.models import AuditLog
from tests.factories import CategoryFactory, MembershipFactory
from tests.web.conftest import signed_in
from tickets import queues, selectors, services
from tickets.models import SavedView, Ticket
from tickets.state import Level, PendingReason, TicketState, TicketType

# Session, user, memberships; then categories, teams, team members, the rows, the rows' SLA "Due" clocks, the saved
# views.
QUEUE_PAGE_QUERIES = 9
# A search text first collects the matching visible ids through the GIN index (selectors.SEARCH_ID_CAP).
SEARCH_PAGE_QUERIES = QUEUE_PAGE_QUERIES + 1
T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


def numbers_on(response) -> list[str]:  # type: ignore[no-untyped-def]
    assert response.status_code == 200
    return [ticket.number for ticket in response.context["tickets"]]


def link(response, rel: str) -> str | None:  # type: ignore[no-untyped-def]
    match = re.search(rf'<a href="([^"]+)" rel="{rel}">'.encode(), response.content)
    return match.group(1).decode().replace("&amp;", "&") if match else None


def desk_url(**params: object) -> str:
    return f"/desk/?{urlencode(params, doseq=True)}"


def messages_of(response) -> list[str]:  # type: ignore[no-untyped-def]
    return [str(message) for message in get_messages(response.wsgi_request)]


def row(number: str) -> Ticket:
    return Ticket.objects.get(number=number)


def ticket_columns(ticket: Ticket) -> dict:  # type: ignore[type-arg]
    return Ticket.objects.filter(pk=ticket.pk).values().get()


# --- queues ----------------------------------------------------------------------------------------------------------


@pytest.fixture
def queue_tickets(desk):  # type: ignore[no-untyped-def]
    """Tickets of every kind around the desktop agent (Ada), raised in a known order."""
    mine = desk.ticket(title="Mine")
    services.ticket_assign(actor=desk.agent, ticket=mine, assignee=desk.agent)
    bos = desk.ticket(title="Bo's")
    services.ticket_assign(actor=desk.agent2, ticket=bos, assignee=desk.agent2)
    fresh = desk.ticket(title="Fresh")
    started = desk.ticket(title="Started")
    services.ticket_transition(actor=desk.agent, ticket=started, to_state=TicketState.IN_PROGRESS)
    done = desk.ticket(title="Done")
    services.ticket_transition(actor=desk.agent, ticket=done, to_state=TicketState.RESOLVED)
    mine_done = desk.ticket(title="Mine, done")
    services.ticket_assign(actor=desk.agent, ticket=mine_done, assignee=desk.agent)
    services.ticket_transition(actor=desk.agent, ticket=mine_done, to_state=TicketState.RESOLVED)
    network = desk.ticket(title="VPN down", category=desk.vpn)
    own_request = desk.ticket(title="Ada's own VPN request", category=desk.vpn, requester=desk.agent)
    phishing = desk.ticket(title="Suspicious mail", category=desk.phishing)
    return {
        "mine": mine,
        "bos": bos,
        "fresh": fresh,
        "started": started,
        "done": done,
        "mine_done": mine_done,
        "network": network,
        "own_request": own_request,
        "phishing": phishing,
    }


def test_recently_updated_leaves_out_tickets_untouched_for_a_week(desk, queue_tickets):
    stale = queue_tickets["done"]
    Ticket.objects.filter(pk=stale.pk).update(updated_at=timezone.now() - dt.timedelta(days=8))

    response = signed_in(desk.agent).get(desk_url(queue="recent"))

    assert stale.number not in numbers_on(response)
    assert queue_tickets["mine_done"].number in numbers_on(response)


@pytest.mark.parametrize(
    ("queue", "expected"),
    [
        ("mine", ["mine"]),
        ("unassigned", ["started", "fresh"]),
        ("team", ["started", "fresh", "bos", "mine"]),
        ("recent", ["own_request", "mine_done", "done", "started", "fresh", "bos", "mine"]),  # all touched today
        ("all", ["own_request", "mine_done", "done", "started", "fresh", "bos", "mine"]),
    ],
)
def test_each_queue_shows_exactly_its_tickets_newest_activity_first(desk, queue_tickets, queue, expected):
    response = signed_in(desk.agent).get(desk_url(queue=queue))

    assert numbers_on(response) == [queue_tickets[name].number for name in expected]
    assert b"Suspicious mail" not in response.content
    assert b"VPN down" not in response.content


@pytest.mark.parametrize(
    ("who", "queue", "expected"),
    [
        ("network_agent", "team", ["own_request", "network"]),
        ("network_agent", "all", ["own_request", "network"]),
        ("security_agent", "team", ["phishing"]),
        ("security_agent", "all", ["phishing"]),
        ("lead", "unassigned", ["started", "fresh"]),
        ("manager", "all", ["own_request", "network", "mine_done", "done", "started", "fresh", "bos", "mine"]),
        ("manager", "team", []),
        ("security_officer", "all", ["phishing"]),
    ],
)
def test_queues_never_show_another_teams_or_confidential_tickets(desk, queue_tickets, who, queue, expected):
    response = signed_in(getattr(desk, who)).get(desk_url(queue=queue))

    assert numbers_on(response) == [queue_tickets[name].number for name in expected]


def test_picking_states_replaces_the_queues_open_states(desk, queue_tickets):
    client = signed_in(desk.agent)

    assert numbers_on(client.get(desk_url(queue="mine", state="resolved"))) == [queue_tickets["mine_done"].number]
    assert numbers_on(client.get(desk_url(queue="team", state=["resolved", "new"]))) == [
        queue_tickets["mine_done"].number,
        queue_tickets["done"].number,
        queue_tickets["fresh"].number,
    ]


def test_people_without_a_team_start_on_all_visible(desk, queue_tickets):
    response = signed_in(desk.manager).get("/desk/")

    assert response.context["queue"] == "all"
    assert len(numbers_on(response)) == 8


def test_desk_is_not_found_for_requesters(desk):
    client = signed_in(desk.requester)

    assert client.get("/desk/").status_code == 404
    assert client.post("/desk/bulk/", {"action": "assign_me"}).status_code == 404
    assert client.post("/desk/views/", {"name": "x"}).status_code == 404


def test_tabs_link_every_queue_and_mark_the_current_one(desk):
    content = signed_in(desk.agent).get(desk_url(queue="unassigned")).content.decode()

    for key, label in queues.QUEUES.items():
        assert f'href="/desk/?queue={key}"' in content
        assert label.replace("'", "&#x27;") in content
    assert '<a href="/desk/?queue=unassigned" aria-current="page">' in content


# --- the table -------------------------------------------------------------------------------------------------------


def test_rows_link_to_their_ticket_for_keyboard_navigation(desk):
    ticket = desk.ticket(title="Printer jam")
    services.ticket_assign(actor=desk.agent, ticket=ticket, assignee=desk.agent2)

    content = signed_in(desk.agent).get("/desk/").content.decode()

    assert 'id="queue-table"' in content
    assert f'<tr data-row-link="/desk/tickets/{ticket.number}/">' in content
    assert f'name="tickets" value="{ticket.number}"' in content
    assert 'name="all_on_page"' in content
    for text in (ticket.number, "Printer jam", "Rita Requester", "Laptop", "P3", "Assigned", "Desktop support"):
        assert text in content
    assert "Bo Agent" in content


def test_age_is_humanised(desk):
    with time_machine.travel(T0, tick=False):
        desk.ticket(title="Old")
    with time_machine.travel(T0 + dt.timedelta(days=3, hours=2), tick=False):
        content = signed_in(desk.agent).get("/desk/").content.decode()

    # Only the largest unit: a queue is scanned, not read.
    assert ">3\xa0days</time>" in content


def test_every_column_header_is_a_sort_link_that_toggles(desk):
    desk.ticket()
    response = signed_in(desk.agent).get(desk_url(queue="team", sort="title"))

    columns = {column.key: column for column in response.context["columns"]}
    assert list(columns) == list(queues.TABLE_COLUMNS)
    assert columns["title"].aria_sort == "ascending"
    assert parse_qs(urlsplit(columns["title"].url).query) == {"queue": ["team"], "sort": ["-title"]}
    assert parse_qs(urlsplit(columns["updated"].url).query) == {"queue": ["team"]}  # newest first: the default
    assert parse_qs(urlsplit(columns["age"].url).query) == {"queue": ["team"], "sort": ["age"]}
    assert 'aria-sort="ascending"' in response.content.decode()


def test_count_is_bounded_by_the_page(desk):
    for number in range(3):
        desk.ticket(title=f"T{number}")
    client = signed_in(desk.agent)

    assert b"3 tickets" in client.get("/desk/").content
    assert b"2+ tickets" in client.get(desk_url(size=2)).content
    assert b"1+ tickets" in client.get(desk_url(size=1)).content


def test_the_filter_form_has_every_labelled_field(desk):
    content = signed_in(desk.agent).get("/desk/").content.decode()

    for label in (
        "Search",
        "State",
        "Priority",
        "Type",
        "Category",
        "Team",
        "Assignee",
        "Requester",
        "Created from",
        "Created to",
        "Updated from",
        "Updated to",
        "Sort",
    ):
        assert re.search(rf'<label for="id_filter_\w+">{label}</label>', content), label
    assert '<button type="submit" class="button">Apply filters</button>' in content
    assert '<a href="/desk/?queue=team">Clear</a>' in content
    # The requester is typed, never picked from a list of every user.
    assert 'name="requester" id="id_filter_requester"' in content
    assert "rita@example.org" not in content


def test_assignee_choices_are_members_of_the_agents_teams_only(desk):
    response = signed_in(desk.agent).get("/desk/")

    assignee = next(f for f in response.context["filters"] if f.name == "assignee")
    assert assignee.choices == [
        ("", "Anyone"),
        ("me", "Me"),
        ("none", "Unassigned"),
        (str(desk.agent2.pk), "Bo Agent"),
        (str(desk.lead.pk), "Lee Lead"),
    ]


# --- filters ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def filter_tickets(desk):  # type: ignore[no-untyped-def]
    printer = CategoryFactory(name="Printer", slug="printer", default_team=desk.desktop)
    with time_machine.travel(T0, tick=False):
        old = desk.ticket(title="Old laptop", impact=Level.HIGH, urgency=Level.HIGH)  # P1
    with time_machine.travel(T0 + dt.timedelta(days=10), tick=False):
        request = desk.ticket(title="New monitor", type=TicketType.REQUEST, requester=desk.other_requester)
        services.ticket_assign(actor=desk.agent, ticket=request, assignee=desk.agent)
    with time_machine.travel(T0 + dt.timedelta(days=20), tick=False):
        jam = desk.ticket(title="Paper jam", category=printer, impact=Level.LOW, urgency=Level.LOW)  # P4
        services.ticket_assign(actor=desk.agent, ticket=jam, assignee=desk.agent2)
        services.ticket_transition(
            actor=desk.agent2, ticket=jam, to_state=TicketState.PENDING, pending_reason=PendingReason.AWAITING_VENDOR
        )
    with time_machine.travel(T0 + dt.timedelta(days=30), tick=False):
        # Touched again later: created on day 0, updated on day 30.
        services.ticket_transition(actor=desk.agent, ticket=old, to_state=TicketState.IN_PROGRESS)
    return {"old": old, "request": request, "jam": jam, "printer": printer}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"state": "pending"}, ["jam"]),
        ({"state": ["in_progress", "assigned"]}, ["old", "request"]),
        ({"priority": "1"}, ["old"]),
        ({"priority": ["1", "4"]}, ["old", "jam"]),
        ({"type": "request"}, ["request"]),
        ({"type": "incident"}, ["old", "jam"]),
        ({"assignee": "me"}, ["request"]),
        ({"assignee": "none"}, ["old"]),
        ({"requester": "otto@example.org"}, ["request"]),
        ({"requester": "OTTO@example.org"}, ["request"]),
        ({"requester": "nobody@example.org"}, []),
        ({"created_from": "2026-03-12"}, ["jam", "request"]),
        ({"created_to": "2026-03-12"}, ["old", "request"]),
        ({"created_from": "2026-03-12", "created_to": "2026-03-12"}, ["request"]),
        ({"updated_from": "2026-03-22", "updated_to": "2026-03-22"}, ["jam"]),
        ({"updated_from": "2026-04-01"}, ["old"]),
        ({"updated_to": "2026-03-02"}, []),
        ({"priority": "4", "state": "pending", "assignee": "none"}, []),
    ],
)
def test_each_filter(desk, filter_tickets, params, expected):
    response = signed_in(desk.agent).get(desk_url(queue="all", **params))

    assert response.context["filters"]
    assert [f for f in response.context["filters"] if f.errors] == []
    assert numbers_on(response) == [filter_tickets[name].number for name in expected]


def test_filter_by_category_team_and_assignee_id(desk, filter_tickets):
    client = signed_in(desk.agent)

    assert numbers_on(client.get(desk_url(queue="all", category=filter_tickets["printer"].pk))) == [
        filter_tickets["jam"].number
    ]
    assert numbers_on(client.get(desk_url(queue="all", assignee=desk.agent2.pk))) == [filter_tickets["jam"].number]
    assert numbers_on(client.get(desk_url(queue="all", team=desk.network.pk))) == []
    assert len(numbers_on(client.get(desk_url(queue="all", team=desk.desktop.pk)))) == 3


def test_filter_by_my_own_id_is_shown_as_me(desk, filter_tickets):
    response = signed_in(desk.agent).get(desk_url(queue="all", assignee=desk.agent.pk))

    assert numbers_on(response) == [filter_tickets["request"].number]
    assert next(f for f in response.context["filters"] if f.name == "assignee").value == "me"


def test_filter_by_requester_id(desk, filter_tickets):
    response = signed_in(desk.agent).get(desk_url(queue="all", requester=desk.other_requester.pk))

    assert numbers_on(response) == [filter_tickets["request"].number]


def test_dates_are_whole_days_in_the_agents_time_zone(desk):
    desk.agent.time_zone = "Europe/Paris"
    desk.agent.save(update_fields=["time_zone"])
    with time_machine.travel(dt.datetime(2026, 3, 1, 23, 30, tzinfo=dt.UTC), tick=False):
        late = desk.ticket(title="Late on the 1st in UTC, the 2nd in Paris")
    client = signed_in(desk.agent)

    assert numbers_on(client.get(desk_url(queue="all", created_from="2026-03-02"))) == [late.number]
    assert numbers_on(client.get(desk_url(queue="all", created_to="2026-03-01"))) == []


def test_filtered_values_are_shown_again_in_the_form(desk, filter_tickets):
    response = signed_in(desk.agent).get(
        desk_url(queue="all", q="laptop", state=["pending", "new"], assignee="me", created_from="2026-03-01")
    )

    fields = {f.name: f for f in response.context["filters"]}
    assert fields["q"].value == "laptop"
    assert fields["state"].values == {"pending", "new"}
    assert fields["assignee"].value == "me"
    assert fields["created_from"].value == "2026-03-01"
    content = response.content.decode()
    assert '<option value="pending" selected>Pending</option>' in content
    assert 'value="laptop"' in content


# --- bad input -------------------------------------------------------------------------------------------------------


def test_bad_filters_show_field_errors_and_the_page_still_renders(desk):
    ticket = desk.ticket(title="Still listed")

    response = signed_in(desk.agent).get(
        "/desk/?queue=all&state=sleeping&priority=9&type=problem&category=laptops&team=x&assignee=bob"
        "&requester=nobody&created_from=2026-13-01&updated_to=yesterday&sort=password&size=lots"
    )

    assert response.status_code == 200
    assert numbers_on(response) == [ticket.number]
    errors = {f.name: f.errors for f in response.context["filters"] if f.errors}
    assert errors == {
        "state": ["Choose states from the list."],
        "priority": ["Choose a priority from P1 to P4."],
        "type": ["Choose incident or service request."],
        "category": ["Choose a category from the list."],
        "team": ["Choose a team from the list."],
        "assignee": ["Choose someone from the list."],
        "requester": ["Enter an e-mail address or a user id."],
        "created_from": ["Enter a date as YYYY-MM-DD."],
        "updated_to": ["Enter a date as YYYY-MM-DD."],
        "sort": ["Choose a sort from the list."],
    }
    content = response.content.decode()
    assert (
        '<ul class="errorlist" id="id_filter_created_from_errors"><li>Enter a date as YYYY-MM-DD.</li></ul>' in content
    )
    assert 'aria-invalid="true" aria-describedby="id_filter_created_from_errors"' in content
    assert 'value="nobody"' in content  # what was typed, to correct it
    assert "Some filters could not be used" in content


def test_ids_that_are_not_offered_are_field_errors(desk):
    desk.ticket()
    client = signed_in(desk.agent)

    response = client.get(desk_url(queue="all", category=999999, team=999999, assignee=desk.network_agent.pk))

    assert response.status_code == 200
    errors = {f.name: f.errors for f in response.context["filters"] if f.errors}
    assert errors == {
        "category": ["Choose a category from the list."],
        "team": ["Choose a team from the list."],
        "assignee": ["Choose someone from your teams."],
    }
    assert len(numbers_on(response)) == 1


@pytest.mark.parametrize(
    "query",
    [
        "q=%00",
        "q=" + "x" * 5000,
        "requester=%00%40example.org",
        "after=%00",
        "before=" + "A" * 5000,
        "sort=title&after=WyJ0aXRsZSIsIlx1MDAwMCIsMV0",  # ["title", "\u0000", 1]
        "category=99999999999999999999999",
        "size=-1",
        "created_from=0000-01-01",
        "created_to=9999-12-31",
        "state=",
        "queue=%00",
    ],
)
def test_odd_input_never_breaks_the_page(desk, query):
    desk.ticket()

    response = signed_in(desk.agent).get(f"/desk/?{query}")

    assert response.status_code == 200


def test_a_tampered_cursor_is_ignored_and_the_first_page_shown(desk):
    numbers = [desk.ticket(title=f"T{n}").number for n in range(3)]
    client = signed_in(desk.agent)
    second_page_url = link(client.get(desk_url(size=2)), "next")
    assert second_page_url is not None
    cursor = parse_qs(urlsplit(second_page_url).query)["after"][0]

    tampered = client.get(desk_url(size=2, after=cursor[:-3] + "AAA"))
    other_sort = client.get(desk_url(size=2, sort="title", after=cursor))

    for response in (tampered, other_sort):
        assert numbers_on(response) == (numbers[::-1] if response is tampered else numbers)[:2]
        assert response.context["is_first_page"]
        assert b"That page link is no longer valid" in response.content


# --- search ----------------------------------------------------------------------------------------------------------


def test_search_finds_a_word_in_the_description_with_stemming(desk):
    hit = desk.ticket(title="Meeting room", description="<p>The projectors in room 4 keep flickering.</p>")
    desk.ticket(title="Keyboard", description="Keys stick.")

    client = signed_in(desk.agent)

    assert numbers_on(client.get(desk_url(queue="all", q="projector"))) == [hit.number]
    assert numbers_on(client.get(desk_url(queue="all", q="flicker room"))) == [hit.number]
    assert numbers_on(client.get(desk_url(queue="all", q='"room 4" -keyboard'))) == [hit.number]
    assert numbers_on(client.get(desk_url(queue="all", q="printer"))) == []


def test_search_finds_a_ticket_by_its_number_in_any_spelling(desk):
    ticket = desk.ticket(title="Numbered")
    desk.ticket(title="Another")
    short = f"{ticket.number[:3].lower()}-{int(ticket.number[4:])}"
    client = signed_in(desk.agent)

    assert numbers_on(client.get(desk_url(queue="all", q=ticket.number))) == [ticket.number]
    assert numbers_on(client.get(desk_url(queue="all", q=short))) == [ticket.number]


def test_search_never_reveals_tickets_the_agent_may_not_see(desk):
    secret = desk.ticket(title="Phishing wave", description="quarantine", category=desk.phishing)
    other = desk.ticket(title="Router quarantine", category=desk.vpn)
    client = signed_in(desk.agent)

    assert numbers_on(client.get(desk_url(queue="all", q="quarantine"))) == []
    assert numbers_on(client.get(desk_url(queue="all", q=secret.number))) == []
    assert numbers_on(client.get(desk_url(queue="all", q=other.number))) == []
    assert numbers_on(signed_in(desk.security_agent).get(desk_url(queue="all", q="quarantine"))) == [secret.number]


def test_a_stop_word_search_finds_nothing_without_an_error(desk):
    desk.ticket(title="The printer")

    assert numbers_on(signed_in(desk.agent).get(desk_url(queue="all", q="the"))) == []


def visible_printer_tickets(user) -> list[str]:  # type: ignore[no-untyped-def]
    """What the permission predicates say `user` may see among the tickets with "printer" in the title."""
    return sorted(
        ticket.number
        for ticket in Ticket.objects.all()
        if "printer" in ticket.title.lower() and permissions.can_view_ticket(user, ticket)
    )


@pytest.fixture
def printer_tickets(desk):  # type: ignore[no-untyped-def]
    """Printer tickets under every visibility rule, for Ada (Desktop support) and Sam (Security)."""

    def printer(title: str, category, requester=None, **fields: object) -> str:  # type: ignore[no-untyped-def]
        ticket = desk.ticket(title=f"Printer {title}", category=category, requester=requester)
        if fields:
            Ticket.objects.filter(pk=ticket.pk).update(**fields)
        return ticket.number

    return {
        "team": printer("team", desk.laptop),
        # In Ada's team, assigned to her and raised by her: every arm finds it, the page shows it once.
        "team_mine_all_ways": printer("all ways", desk.laptop, requester=desk.agent, assignee=desk.agent),
        "own_request_elsewhere": printer("own request", desk.vpn, requester=desk.agent),
        "assigned_elsewhere": printer("assigned", desk.vpn, assignee=desk.agent),
        "other_team": printer("other team", desk.vpn),
        "confidential_in_team": printer("confidential team", desk.laptop, is_confidential=True),
        "confidential_assigned_to_ada": printer(
            "confidential assigned", desk.vpn, assignee=desk.agent, is_confidential=True
        ),
        "own_confidential_request": printer("own phishing", desk.phishing, requester=desk.agent),
        "security": printer("phishing", desk.phishing),
        "confidential_assigned_to_sam": printer(
            "confidential sam", desk.vpn, assignee=desk.security_agent, is_confidential=True
        ),
        "confidential_elsewhere": printer("confidential elsewhere", desk.vpn, is_confidential=True),
    }


def searched(client, **params: object) -> list[str]:  # type: ignore[no-untyped-def]
    return sorted(numbers_on(client.get(desk_url(**{"queue": "all", "q": "printer", **params}))))


def test_an_agents_search_finds_exactly_the_tickets_of_each_visibility_rule(
    desk, printer_tickets, django_assert_num_queries
):
    t = printer_tickets
    client = signed_in(desk.agent)
    client.get(desk_url(queue="all", q="printer"))  # warm the session

    with django_assert_num_queries(SEARCH_PAGE_QUERIES) as captured:
        found = searched(client)

    assert selectors._visibility_arms(desk.agent) is not None
    assert sum("UNION ALL" in query["sql"] for query in captured.captured_queries) == 1
    expected = [t["team"], t["team_mine_all_ways"], t["own_request_elsewhere"], t["assigned_elsewhere"]]
    assert found == sorted([*expected, t["own_confidential_request"]]) == visible_printer_tickets(desk.agent)
    # Every arm carries the page's filters.
    assert searched(client, team=desk.network.pk) == sorted([t["own_request_elsewhere"], t["assigned_elsewhere"]])
    assert searched(client, queue="mine") == sorted([t["team_mine_all_ways"], t["assigned_elsewhere"]])
    assert searched(client, queue="team") == sorted([t["team"], t["team_mine_all_ways"]])
    assert searched(client, assignee="none", team=desk.network.pk) == [t["own_request_elsewhere"]]
    assert searched(client, requester=desk.agent.pk) == sorted(
        [t["team_mine_all_ways"], t["own_request_elsewhere"], t["own_confidential_request"]]
    )
    assert sorted(numbers_on(client.get(desk_url(queue="all", q=t["assigned_elsewhere"])))) == [t["assigned_elsewhere"]]
    for hidden in ("other_team", "confidential_in_team", "confidential_assigned_to_ada", "security"):
        assert numbers_on(client.get(desk_url(queue="all", q=t[hidden]))) == []


def test_a_security_team_members_search_finds_confidential_team_and_assigned_tickets(desk, printer_tickets):
    t = printer_tickets

    found = searched(signed_in(desk.security_agent))

    assert selectors._visibility_arms(desk.security_agent) is not None
    # Ada's phishing report is a Security team ticket: Sam sees it as a team ticket.
    assert found == sorted([t["security"], t["own_confidential_request"], t["confidential_assigned_to_sam"]])
    assert found == visible_printer_tickets(desk.security_agent)


@pytest.mark.parametrize("who", ["manager", "security_officer"])
@pytest.mark.parametrize("also_agent", [False, True], ids=["", "also_agent"])
def test_managers_and_security_officers_search_with_the_single_id_query(desk, printer_tickets, who, also_agent):
    user = getattr(desk, who)
    if also_agent:
        MembershipFactory(team=desk.network, user=user)
    client = signed_in(user)
    client.get(desk_url(queue="all", q="printer"))  # warm the session
    with CaptureQueriesContext(connection) as unsearched:
        client.get(desk_url(queue="all"))

    with CaptureQueriesContext(connection) as captured:
        found = searched(client)

    # The search adds exactly one query, the id step, without a UNION.
    assert len(captured.captured_queries) == len(unsearched.captured_queries) + 1
    assert selectors._visibility_arms(user) is None
    assert not any("UNION" in query["sql"] for query in captured.captured_queries)
    assert found == visible_printer_tickets(user)
    confidential = {"confidential_in_team", "confidential_assigned_to_ada", "own_confidential_request", "security"}
    confidential |= {"confidential_assigned_to_sam", "confidential_elsewhere"}
    if who == "manager":
        expected = {name for name in printer_tickets if name not in confidential}
    else:
        expected = confidential | (
            {"own_request_elsewhere", "assigned_elsewhere", "other_team"} if also_agent else set()
        )
    assert found == sorted(printer_tickets[name] for name in expected)


# --- sorting and keyset pages ----------------------------------------------------------------------------------------


@pytest.fixture
def sortable(desk):  # type: ignore[no-untyped-def]
    """Eleven tickets with ties on every sort value (same instants, titles, names, priorities, states, teams)."""
    teamless = CategoryFactory(name="Facilities", slug="facilities", default_team=None)
    specs = [
        # (hour, title, requester, category, impact/urgency, team agent → assignee, state)
        (0, "Bravo", "requester", "laptop", Level.HIGH, "agent", TicketState.IN_PROGRESS),
        (0, "Alpha", "other_requester", "laptop", Level.LOW, None, None),
        (0, "Charlie", "requester", "vpn", Level.MEDIUM, "network_agent", None),
        (1, "Alpha", "requester", "teamless", Level.MEDIUM, None, None),
        (1, "Delta", "other_requester", "laptop", Level.HIGH, "agent2", TicketState.RESOLVED),
        (2, "Bravo", "other_requester", "vpn", Level.LOW, None, TicketState.PENDING),
        (2, "Echo", "requester", "laptop", Level.MEDIUM, "agent", None),
        (2, "alpha", "requester", "laptop", Level.MEDIUM, None, TicketState.CANCELLED),
        (3, "Foxtrot", "other_requester", "teamless", Level.HIGH, None, None),
        (3, "Bravo", "requester", "laptop", Level.LOW, "agent2", TicketState.CLOSED),
        (4, "Golf", "requester", "vpn", Level.MEDIUM, "network_agent", TicketState.IN_PROGRESS),
    ]
    categories = {"laptop": desk.laptop, "vpn": desk.vpn, "teamless": teamless}
    for hour, title, requester, category, level, assignee, state in specs:
        with time_machine.travel(T0 + dt.timedelta(hours=hour), tick=False):
            ticket = desk.ticket(
                title=title,
                requester=getattr(desk, requester),
                category=categories[category],
                impact=level,
                urgency=level,
            )
            worker = desk.network_agent if category == "vpn" else desk.agent
            if assignee:
                services.ticket_assign(actor=worker, ticket=ticket, assignee=getattr(desk, assignee))
            if state == TicketState.PENDING:
                services.ticket_transition(
                    actor=worker, ticket=ticket, to_state=state, pending_reason=PendingReason.AWAITING_VENDOR
                )
            elif state == TicketState.CANCELLED:
                services.ticket_transition(actor=worker, ticket=ticket, to_state=state, reason="Duplicate")
            elif state == TicketState.CLOSED:
                services.ticket_transition(actor=worker, ticket=ticket, to_state=TicketState.RESOLVED)
                services.ticket_transition(actor=worker, ticket=ticket, to_state=state)
            elif state is not None:
                services.ticket_transition(actor=worker, ticket=ticket, to_state=state)
    return list(Ticket.objects.select_related("requester", "category", "team", "assignee"))


def sort_value(ticket: Ticket, column: str) -> object:
    return {
        "updated": ticket.updated_at,
        "created": ticket.created_at,
        "priority": ticket.priority,
        "number": ticket.number,
        "title": ticket.title,
        "state": queues.STATE_ORDER.index(ticket.state),
        "requester": ticket.requester.full_name,
        "category": ticket.category.name,
        "team": ticket.team.name if ticket.team else "",
        "assignee": ticket.assignee.full_name if ticket.assignee else "",
    }[column]


def expected_order(tickets: list[Ticket], sort: queues.Sort) -> list[str]:
    ordered = sorted(tickets, key=lambda t: (sort_value(t, sort.column), t.pk), reverse=sort.is_column_descending)
    return [t.number for t in ordered]


@pytest.mark.parametrize("descending", [False, True], ids=["ascending", "descending"])
@pytest.mark.parametrize("key", sorted(queues.SORT_COLUMNS))
def test_sorting_and_keyset_pages_are_consistent_across_ties(desk, sortable, key, descending):
    sort = queues.Sort(key, descending)
    expected = expected_order(sortable, sort)
    client = signed_in(desk.manager)  # sees every non-confidential ticket of every team

    # when: walk forwards page by page
    pages = []
    url: str | None = desk_url(queue="all", sort=sort.param, size=3)
    while url is not None:
        response = client.get(url)
        pages.append(numbers_on(response))
        url = link(response, "next")
        assert len(pages) <= 4
    # and back again from the last page
    backwards = []
    url = link(response, "prev")
    while url is not None:
        response = client.get(url)
        backwards.append(numbers_on(response))
        url = link(response, "prev")
        assert len(backwards) <= 4

    # then: every ticket exactly once, in order, and the same pages both ways
    assert [number for page in pages for number in page] == expected
    assert [len(page) for page in pages] == [3, 3, 3, 2]
    assert backwards == pages[-2::-1]
    assert link(response, "prev") is None  # back on the first page


def test_title_sort_is_case_sensitive_byte_order_like_the_database(desk, sortable):
    response = signed_in(desk.manager).get(desk_url(queue="all", sort="title", size=5))

    assert [row(n).title for n in numbers_on(response)] == ["Alpha", "Alpha", "Bravo", "Bravo", "Bravo"]


def test_a_page_changed_underneath_keeps_going_without_dupes(desk):
    tickets = [desk.ticket(title=f"T{n}") for n in range(5)]
    client = signed_in(desk.agent)
    first = client.get(desk_url(size=2))
    # Someone updates a ticket of the first page: it moves to the top, after the cursor's place.
    services.ticket_assign(actor=desk.agent, ticket=tickets[4], assignee=desk.agent)

    second = client.get(link(first, "next"))

    assert numbers_on(first) == [tickets[4].number, tickets[3].number]
    assert numbers_on(second) == [tickets[2].number, tickets[1].number]


# --- bulk changes ----------------------------------------------------------------------------------------------------


def bulk(client, action: str, numbers: list[str], next_url: str = "/desk/?queue=team&sort=title", **data):  # type: ignore[no-untyped-def]
    return client.post("/desk/bulk/", {"action": action, "tickets": numbers, "next": next_url, **data})


def test_bulk_assign_to_me(desk):
    tickets = [desk.ticket(title=f"T{n}") for n in range(3)]
    client = signed_in(desk.agent)

    response = bulk(client, "assign_me", [t.number for t in tickets])

    assert response.status_code == 302
    assert response.url == "/desk/?queue=team&sort=title"
    assert messages_of(response) == ["3 updated."]
    assert [(row(t.number).assignee_id, row(t.number).state) for t in tickets] == [(desk.agent.pk, "assigned")] * 3


def test_bulk_assign_to_a_team_member_and_report_those_already_so(desk):
    tickets = [desk.ticket(title=f"T{n}") for n in range(2)]
    services.ticket_assign(actor=desk.agent, ticket=tickets[0], assignee=desk.agent2)
    client = signed_in(desk.agent)

    response = bulk(client, "assign", [t.number for t in tickets], assignee=desk.agent2.pk)

    assert messages_of(response) == ["1 updated, 1 already as asked."]
    assert {row(t.number).assignee_id for t in tickets} == {desk.agent2.pk}


def test_bulk_state_change_applies_what_it_can_and_refuses_the_rest_unchanged(desk):
    fresh = desk.ticket(title="Fresh")
    started = desk.ticket(title="Started")
    services.ticket_transition(actor=desk.agent, ticket=started, to_state=TicketState.IN_PROGRESS)
    closed = desk.ticket(title="Closed")
    services.ticket_transition(actor=desk.agent, ticket=closed, to_state=TicketState.RESOLVED)
    services.ticket_transition(actor=desk.agent, ticket=closed, to_state=TicketState.CLOSED)
    hidden = desk.ticket(title="Other team's", category=desk.vpn)
    closed_before = ticket_columns(closed)
    hidden_before = ticket_columns(hidden)
    client = signed_in(desk.agent)

    response = bulk(
        client, "state", [fresh.number, closed.number, hidden.number, "INC-999999", started.number], state="resolved"
    )

    assert messages_of(response) == [
        f"2 updated, 2 not found: {hidden.number}, INC-999999, "
        f"1 refused: {closed.number} — A ticket cannot go from Closed to Resolved."
    ]
    assert (row(fresh.number).state, row(started.number).state) == ("resolved", "resolved")
    assert ticket_columns(closed) == closed_before
    assert ticket_columns(hidden) == hidden_before


def test_bulk_pending_needs_a_reason_per_ticket(desk):
    ticket = desk.ticket()
    client = signed_in(desk.agent)

    refused = bulk(client, "state", [ticket.number], state="pending")
    assert messages_of(refused) == [f"0 updated, 1 refused: {ticket.number} — Pending needs a reason."]
    client.get(refused.url)  # the list shows (and so uses up) the message
    done = bulk(client, "state", [ticket.number], state="pending", pending_reason="awaiting_requester")

    assert messages_of(done) == ["1 updated."]
    assert (row(ticket.number).state, row(ticket.number).pending_reason) == ("pending", "awaiting_requester")


def test_bulk_select_all_on_page(desk):
    tickets = [desk.ticket(title=f"T{n}") for n in range(3)]
    client = signed_in(desk.agent)

    response = client.post(
        "/desk/bulk/",
        {"action": "assign_me", "all_on_page": "on", "page_tickets": [t.number for t in tickets], "next": "/desk/"},
    )

    assert messages_of(response) == ["3 updated."]


def test_the_list_posts_its_own_url_and_every_ticket_of_the_page(desk):
    tickets = [desk.ticket(title=f"T{n}") for n in range(2)]

    content = signed_in(desk.agent).get(desk_url(queue="team", sort="title")).content.decode()

    assert '<form method="post" action="/desk/bulk/" id="bulk-form"' in content
    assert '<input type="hidden" name="next" value="/desk/?queue=team&amp;sort=title">' in content
    for ticket in tickets:
        assert f'<input type="hidden" name="page_tickets" value="{ticket.number}">' in content


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"action": "assign_me"}, "Select at least one ticket."),
        ({"action": "explode", "tickets": ["INC-000001"]}, "Select a valid choice."),
        ({"action": "assign", "tickets": ["INC-000001"]}, "Choose who to assign the tickets to."),
        ({"action": "state", "tickets": ["INC-000001"]}, "Choose the new state."),
        ({"action": "state", "tickets": ["INC-000001"], "state": "new"}, "Select a valid choice."),
        ({"action": "assign_me", "tickets": ["'; drop table"]}, "Choose tickets from the list."),
    ],
)
def test_bulk_with_bad_input_changes_nothing(desk, data, error):
    ticket = desk.ticket()
    before = ticket_columns(ticket)

    response = signed_in(desk.agent).post("/desk/bulk/", {**data, "next": "/desk/?queue=mine"})

    assert response.status_code == 302
    assert response.url == "/desk/?queue=mine"
    [message] = messages_of(response)
    assert message.startswith("Nothing was changed:")
    assert error in message
    assert ticket_columns(ticket) == before


def test_bulk_assign_to_someone_outside_the_agents_teams_is_refused(desk):
    ticket = desk.ticket()
    before = ticket_columns(ticket)

    response = bulk(signed_in(desk.agent), "assign", [ticket.number], assignee=desk.network_agent.pk)

    assert "Select a valid choice." in messages_of(response)[0]
    assert ticket_columns(ticket) == before


def test_bulk_by_a_manager_who_cannot_work_tickets_is_refused_per_ticket(desk):
    ticket = desk.ticket()
    before = ticket_columns(ticket)

    response = bulk(signed_in(desk.manager), "assign_me", [ticket.number])

    assert messages_of(response) == [
        f"0 updated, 1 refused: {ticket.number} — You can view this ticket but not change it."
    ]
    assert ticket_columns(ticket) == before


@pytest.mark.parametrize(
    "next_url", ["https://evil.example/", "//evil.example/desk/", "javascript:alert(1)", "", "http:///desk/"]
)
def test_bulk_only_goes_back_to_this_site(desk, next_url):
    ticket = desk.ticket()

    response = bulk(signed_in(desk.agent), "assign_me", [ticket.number], next_url=next_url)

    assert response.url == "/desk/"


def test_bulk_is_post_only(desk):
    assert signed_in(desk.agent).get("/desk/bulk/").status_code == 405


# --- saved views -----------------------------------------------------------------------------------------------------


def save_view(client, name: str, query: str, team: object = "", **extra: object):  # type: ignore[no-untyped-def]
    return client.post("/desk/views/", {"name": name, "team": team, "query": query, **extra})


def saved_names(response) -> list[str]:  # type: ignore[no-untyped-def]
    return [link.view.name for link in response.context["saved_views"]]


def test_save_a_personal_view_keeps_only_valid_filters_and_sort(desk):
    client = signed_in(desk.agent)

    response = save_view(client, "My P1s", "queue=all&priority=1&sort=-created&after=xyz&size=10")

    view = SavedView.objects.get()
    assert (view.owner, view.team, view.name) == (desk.agent, None, "My P1s")
    assert view.query == {"queue": "all", "priority": ["1"], "sort": "-created"}
    assert response.status_code == 302
    assert response.url == "/desk/?queue=all&priority=1&sort=-created"
    assert messages_of(response) == ["View “My P1s” saved."]
    audit = AuditLog.objects.get(action="saved_view.create")
    assert (audit.actor_id, audit.object_id) == (desk.agent.pk, str(view.pk))


def test_saved_views_are_listed_for_their_owner_and_shared_team_only(desk):
    save_view(signed_in(desk.agent), "Personal", "queue=mine")
    save_view(signed_in(desk.agent), "Desktop P1", "queue=team&priority=1", team=desk.desktop.pk)
    save_view(signed_in(desk.network_agent), "Network backlog", "queue=team", team=desk.network.pk)

    assert saved_names(signed_in(desk.agent).get("/desk/")) == ["Desktop P1", "Personal"]
    assert saved_names(signed_in(desk.agent2).get("/desk/")) == ["Desktop P1"]
    assert saved_names(signed_in(desk.lead).get("/desk/")) == ["Desktop P1"]
    assert saved_names(signed_in(desk.network_agent).get("/desk/")) == ["Network backlog"]


def test_a_saved_view_link_opens_its_query_and_is_marked_current(desk):
    save_view(signed_in(desk.agent), "Unassigned by title", "queue=unassigned&sort=title")
    client = signed_in(desk.agent2)  # not shared: only the owner sees it
    assert saved_names(client.get("/desk/")) == []

    response = signed_in(desk.agent).get("/desk/?queue=unassigned&sort=title")

    [saved] = response.context["saved_views"]
    assert saved.url == "/desk/?queue=unassigned&sort=title"
    assert saved.is_current
    assert '<a href="/desk/?queue=unassigned&amp;sort=title" aria-current="page">Unassigned by title</a>' in (
        response.content.decode()
    )


def test_the_save_form_carries_the_current_filters(desk):
    response = signed_in(desk.agent).get("/desk/?queue=all&state=new&q=vpn&after=junk")

    assert response.context["save_form"].initial["query"] == "queue=all&q=vpn&state=new"
    assert list(response.context["save_form"].fields["team"].choices) == [
        ("", "No, just for me"),
        (desk.desktop.pk, "Desktop support"),
    ]


def test_a_second_view_with_the_same_name_is_a_conflict_shown_on_the_form(desk):
    client = signed_in(desk.agent)
    save_view(client, "Mine", "queue=mine")

    response = save_view(client, "Mine", "queue=all")

    assert response.status_code == 409
    assert SavedView.objects.count() == 1
    assert response.context["save_form"].errors == {"name": ["Choose another name."]}
    assert b"Choose another name." in response.content


def test_sharing_with_a_team_the_agent_is_not_in_is_refused(desk):
    response = save_view(signed_in(desk.agent), "Sneaky", "queue=all", team=desk.network.pk)

    assert response.status_code == 400
    assert "team" in response.context["save_form"].errors
    assert not SavedView.objects.exists()


def test_saving_bad_filters_is_refused_with_the_reasons(desk):
    response = save_view(signed_in(desk.agent), "Broken", "queue=all&priority=9&created_from=never")

    assert response.status_code == 400
    assert not SavedView.objects.exists()
    errors = response.context["save_form"].non_field_errors()
    assert "Priority: Choose a priority from P1 to P4." in errors
    assert "Created from: Enter a date as YYYY-MM-DD." in errors


def test_saving_without_a_name_is_refused(desk):
    response = save_view(signed_in(desk.agent), "", "queue=all")

    assert response.status_code == 400
    assert response.context["save_form"].errors == {"name": ["This field is required."]}


def test_delete_own_view(desk):
    client = signed_in(desk.agent)
    saved = save_view(client, "Mine", "queue=mine", team=desk.desktop.pk)
    assert messages_of(saved) == ["View “Mine” saved, shared with Desktop support."]
    client.get(saved.url)
    view = SavedView.objects.get()

    response = client.post(f"/desk/views/{view.pk}/delete/", {"next": "/desk/?queue=mine"})

    assert response.status_code == 302
    assert response.url == "/desk/?queue=mine"
    assert messages_of(response) == ["View “Mine” deleted."]
    assert not SavedView.objects.exists()
    assert AuditLog.objects.filter(action="saved_view.delete", object_id=str(view.pk)).count() == 1


def test_a_team_mate_cannot_delete_a_shared_view(desk):
    save_view(signed_in(desk.agent), "Shared", "queue=team", team=desk.desktop.pk)
    view = SavedView.objects.get()

    response = signed_in(desk.agent2).post(f"/desk/views/{view.pk}/delete/")

    assert response.status_code == 302
    assert messages_of(response) == ["Only the person who saved this view can delete it."]
    assert SavedView.objects.filter(pk=view.pk).exists()


@pytest.mark.parametrize("who", ["network_agent", "manager"])
def test_someone_who_cannot_see_a_view_gets_not_found_when_deleting_it(desk, who):
    save_view(signed_in(desk.agent), "Personal", "queue=mine")
    view = SavedView.objects.get()

    response = signed_in(getattr(desk, who)).post(f"/desk/views/{view.pk}/delete/")

    assert response.status_code == 404
    assert SavedView.objects.filter(pk=view.pk).exists()


def test_own_views_show_a_delete_button_and_shared_ones_do_not(desk):
    save_view(signed_in(desk.agent), "Shared", "queue=team", team=desk.desktop.pk)
    view = SavedView.objects.get()
    action = f'action="/desk/views/{view.pk}/delete/"'

    assert action in signed_in(desk.agent).get("/desk/").content.decode()
    assert action not in signed_in(desk.agent2).get("/desk/").content.decode()


# --- query counts ----------------------------------------------------------------------------------------------------


def raise_mixed(desk, count: int) -> None:  # type: ignore[no-untyped-def]
    """Tickets in the same mix at any size: assigned to Ada, to Bo, unassigned; some in progress."""
    for number in range(count):
        ticket = desk.ticket(title=f"Laptop {number}", description="The laptop does not boot")
        if number % 3 == 1:
            services.ticket_assign(actor=desk.agent, ticket=ticket, assignee=desk.agent)
        elif number % 3 == 2:
            services.ticket_assign(actor=desk.agent, ticket=ticket, assignee=desk.agent2)
            services.ticket_transition(actor=desk.agent2, ticket=ticket, to_state=TicketState.IN_PROGRESS)


def test_search_past_the_id_cap_still_pages_through_every_match(desk, monkeypatch):
    monkeypatch.setattr(selectors, "SEARCH_ID_CAP", 3)
    for number in range(7):
        desk.ticket(title=f"Printer jam {number}")
    client = signed_in(desk.agent)

    first = client.get(desk_url(queue="all", q="printer", size=5))
    second = client.get(link(first, "next"))

    assert len(numbers_on(first)) == 5
    assert len(numbers_on(second)) == 2
    assert not set(numbers_on(first)) & set(numbers_on(second))


@pytest.mark.parametrize(
    "query",
    [
        "queue=mine",
        "queue=unassigned",
        "queue=team",
        "queue=recent",
        "queue=all",
        "queue=all&state=new&state=assigned&priority=3&type=incident&assignee=none&requester=rita%40example.org"
        "&created_from=2020-01-01&updated_to=2099-01-01&team={team}&category={category}",
        "queue=all&q=laptop+boot",
        "queue=all&q={number}",
        "queue=team&sort=title",
        "queue=all&sort=-assignee&size=10",
    ],
)
def test_queue_page_queries_do_not_grow_with_the_table_or_the_filters(desk, django_assert_num_queries, query):
    save_view(signed_in(desk.agent), "Shared", "queue=team", team=desk.desktop.pk)
    raise_mixed(desk, 5)
    first = Ticket.objects.order_by("id").first()
    assert first is not None
    url = "/desk/?" + query.format(team=desk.desktop.pk, category=desk.laptop.pk, number=first.number)
    client = signed_in(desk.agent)
    client.get(url)  # warm the session, as on every later page
    expected = SEARCH_PAGE_QUERIES if "q=" in query else QUEUE_PAGE_QUERIES

    with django_assert_num_queries(expected):
        small = client.get(url)
    raise_mixed(desk, 40)
    with django_assert_num_queries(expected):
        large = client.get(url)
    with django_assert_num_queries(expected):
        next_page = client.get(link(large, "next") or url)

    assert small.status_code == large.status_code == next_page.status_code == 200
    assert len(small.context["tickets"]) <= len(large.context["tickets"])


def test_page_of_a_hundred_rows_costs_the_same(desk, django_assert_num_queries):
    raise_mixed(desk, 105)
    client = signed_in(desk.agent)
    client.get("/desk/?queue=all")

    with django_assert_num_queries(QUEUE_PAGE_QUERIES):
        response = client.get("/desk/?queue=all&size=100")

    assert len(response.context["tickets"]) == 100
    assert b"100+ tickets" in response.content


def test_now_is_aware(desk):
    # The age column subtracts aware datetimes: the view's "now" is aware like every stored instant.
    response = signed_in(desk.agent).get("/desk/")

    assert timezone.is_aware(response.context["now"])
