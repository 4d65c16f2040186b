"""API endpoints cost a constant number of queries whatever the table size: each is measured at two sizes and must
give the same exact count both times."""

import pytest

from security.models import User
from tests.api.conftest import api_client as signed_in_client
from tests.factories import CategoryFactory, MembershipFactory
from tests.web.conftest import png
from tests.web.test_query_counts import grow_timeline, raise_tickets
from tickets import services

# Every request: the user's memberships (once). Then: the list: the page (1), with a search the matching ids first
# (2); the detail: the ticket (1); the timeline, comments, attachments: the ticket and the rows (2).
LIST_QUERIES = 2
SEARCH_QUERIES = 3
DETAIL_QUERIES = 2
TIMELINE_QUERIES = 3
# Categories are the same for everyone (no memberships needed); teams and users depend on the caller's teams.
DIRECTORY_QUERIES = {"categories/": 1, "teams/": 2, "users/": 2}


def api_client(user):  # type: ignore[no-untyped-def]
    """A client for a freshly loaded user, as each real request has (its memberships are not cached yet)."""
    return signed_in_client(User.objects.get(pk=user.pk))


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", LIST_QUERIES),
        ("?state=new&state=assigned&priority=3&ordering=-created", LIST_QUERIES),
        ("?team=1&assignee=none&created_from=2000-01-01&ordering=priority&page_size=100", LIST_QUERIES),
        ("?q=ticket", SEARCH_QUERIES),
    ],
    ids=["plain", "filtered", "team", "search"],
)
def test_ticket_list_queries_do_not_grow_with_the_table(desk, django_assert_num_queries, query, expected) -> None:  # type: ignore[no-untyped-def]
    raise_tickets(desk, 4)
    client = api_client(desk.agent)
    with django_assert_num_queries(expected):
        small = client.get(f"/api/v1/tickets/{query}")

    raise_tickets(desk, 36)
    client = api_client(desk.agent)
    with django_assert_num_queries(expected):
        large = client.get(f"/api/v1/tickets/{query}")

    assert small.status_code == large.status_code == 200
    if not query:
        assert len(small.json()["results"]) == 4
        assert len(large.json()["results"]) == 40


def test_next_page_costs_the_same(desk, django_assert_num_queries) -> None:  # type: ignore[no-untyped-def]
    client = api_client(desk.agent)
    raise_tickets(desk, 12)
    first = client.get("/api/v1/tickets/?page_size=5").json()
    client = api_client(desk.agent)
    with django_assert_num_queries(LIST_QUERIES):
        second = client.get(f"/api/v1/tickets/?page_size=5&cursor={first['next_cursor']}").json()
    third = client.get(f"/api/v1/tickets/?page_size=5&cursor={second['next_cursor']}").json()
    back = client.get(f"/api/v1/tickets/?page_size=5&cursor={second['previous_cursor']}").json()

    numbers = [row["number"] for page in (first, second, third) for row in page["results"]]
    assert len(numbers) == len(set(numbers)) == 12
    assert third["next_cursor"] is None
    assert back["results"] == first["results"]


@pytest.mark.parametrize("path", ["", "events/", "comments/", "attachments/"])
def test_ticket_detail_queries_do_not_grow_with_the_timeline(desk, django_assert_num_queries, path) -> None:  # type: ignore[no-untyped-def]
    ticket = desk.ticket(title="Tracked")
    services.ticket_assign(actor=desk.agent, ticket=ticket, assignee=desk.agent)
    services.attachment_add(actor=desk.agent, ticket=ticket, upload=png())
    url = f"/api/v1/tickets/{ticket.number}/{path}"
    expected = DETAIL_QUERIES if not path else TIMELINE_QUERIES
    client = api_client(desk.agent)
    with django_assert_num_queries(expected):
        small = client.get(url)

    grow_timeline(desk, ticket, 40)
    client = api_client(desk.agent)
    with django_assert_num_queries(expected):
        large = client.get(url)

    assert small.status_code == large.status_code == 200
    if path == "events/":
        assert (len(small.json()), len(large.json())) == (4, 40)


@pytest.mark.parametrize("path", ["categories/", "teams/", "users/"])
def test_directory_queries_do_not_grow(desk, django_assert_num_queries, path) -> None:  # type: ignore[no-untyped-def]
    client = api_client(desk.agent)
    with django_assert_num_queries(DIRECTORY_QUERIES[path]):
        small = client.get(f"/api/v1/{path}")

    for _number in range(30):
        MembershipFactory(team=desk.desktop)
        CategoryFactory(default_team=desk.desktop)
    client = api_client(desk.agent)
    with django_assert_num_queries(DIRECTORY_QUERIES[path]):
        large = client.get(f"/api/v1/{path}")

    assert small.status_code == large.status_code == 200
    assert len(large.json()["results"]) > len(small.json()["results"]) or path == "teams/"
