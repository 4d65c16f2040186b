"""The desk queue's URL parameters, parsed and validated without a database (`tickets.queues`)."""

import base64
import json
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from tickets import queues
from tickets.queues import Cursor, QueueQuery, Sort, parse_queue


def parse(**params: str | list[str]) -> queues.ParsedQueue:
    return parse_queue({name: value if isinstance(value, list) else [value] for name, value in params.items()})


def raw_cursor(payload: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


# --- defaults and queues ---------------------------------------------------------------------------------------------


def test_no_parameters_is_the_default_queue_sorted_by_newest_activity():
    parsed = parse()

    assert parsed.query == QueueQuery()
    assert parsed.errors == {}
    assert parsed.query.queue == "team"
    assert parsed.query.sort == Sort("updated", is_descending=True)
    assert parsed.query.size == 50
    assert parsed.query.is_first_page


@pytest.mark.parametrize("queue", ["mine", "unassigned", "team", "recent", "all"])
def test_every_queue_is_accepted(queue):
    assert parse(queue=queue).query.queue == queue


@pytest.mark.parametrize("queue", ["nonsense", "MINE", "", " "])
def test_an_unknown_queue_falls_back_to_the_default(queue):
    parsed = parse(queue=queue)

    assert parsed.query.queue == "team"
    assert parsed.errors == {}


def test_the_caller_chooses_the_default_queue():
    assert parse_queue({}, default_queue="all").query.queue == "all"
    assert parse(queue="bad").query.queue == "team"


@pytest.mark.parametrize(
    ("queue", "states"),
    [
        ("mine", ("new", "assigned", "in_progress", "pending")),
        ("unassigned", ("new", "assigned", "in_progress", "pending")),
        ("team", ("new", "assigned", "in_progress", "pending")),
        ("recent", ()),
        ("all", ()),
    ],
)
def test_queues_list_open_states_or_every_state_until_states_are_picked(queue, states):
    assert parse(queue=queue).query.effective_states == states
    assert parse(queue=queue, state="resolved").query.effective_states == ("resolved",)


# --- text search -----------------------------------------------------------------------------------------------------


def test_search_text_is_trimmed_and_its_spaces_collapsed():
    parsed = parse(q="  printer   on floor 3 ")

    assert parsed.query.q == "printer on floor 3"
    assert parsed.query.number is None


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("INC-000123", "INC-000123"),
        ("inc-123", "INC-000123"),
        ("req-45", "REQ-000045"),
        ("REQ000045", "REQ-000045"),
        ("Inc 7", "INC-000007"),
        ("INC-1234567", "INC-1234567"),
        (" req-0000045 ", "REQ-000045"),
    ],
)
def test_search_that_looks_like_a_ticket_number_also_matches_the_number(text, number):
    parsed = parse(q=text)

    assert parsed.query.number == number
    assert parsed.query.q == text.strip()


@pytest.mark.parametrize("text", ["INC-", "CHG-000123", "INC-000123 printer", "123", "incident 123"])
def test_search_that_is_not_a_ticket_number_is_only_full_text(text):
    assert parse(q=text).query.number is None


def test_search_longer_than_the_limit_is_refused_and_shown_again():
    text = "a" * 201

    parsed = parse(q=text)

    assert parsed.query.q == ""
    assert parsed.errors == {"q": ["Use at most 200 characters."]}
    assert parsed.raw == {"q": text}


def test_control_characters_are_dropped_from_text():
    parsed = parse(q="print\x00er\tjam", requester="rita@example.org\x00")

    assert parsed.query.q == "printerjam"
    assert parsed.query.requester_email == "rita@example.org"


def test_empty_search_is_no_search():
    assert parse(q="   ").query == QueueQuery()


# --- choices ---------------------------------------------------------------------------------------------------------


def test_states_are_kept_in_lifecycle_order_without_duplicates():
    parsed = parse(state=["pending", "new", "pending", "resolved"])

    assert parsed.query.states == ("new", "pending", "resolved")
    assert parsed.errors == {}


def test_an_unknown_state_is_an_error_and_the_known_ones_still_apply():
    parsed = parse(state=["new", "sleeping"])

    assert parsed.query.states == ("new",)
    assert parsed.errors == {"state": ["Choose states from the list."]}


@pytest.mark.parametrize(("values", "expected"), [(["1"], (1,)), (["4", "2", "2"], (2, 4))])
def test_priorities(values, expected):
    parsed = parse(priority=values)

    assert parsed.query.priorities == expected
    assert parsed.errors == {}


@pytest.mark.parametrize("value", ["9", "0", "P1", "-1", "1.5", "high"])
def test_a_priority_outside_p1_to_p4_is_an_error(value):
    parsed = parse(priority=["1", value])

    assert parsed.query.priorities == (1,)
    assert parsed.errors == {"priority": ["Choose a priority from P1 to P4."]}


@pytest.mark.parametrize("value", ["incident", "request"])
def test_type(value):
    assert parse(type=value).query.type == value


def test_an_unknown_type_is_an_error():
    parsed = parse(type="problem")

    assert parsed.query.type is None
    assert parsed.errors == {"type": ["Choose incident or service request."]}


@pytest.mark.parametrize(("name", "attribute"), [("category", "category_id"), ("team", "team_id")])
def test_category_and_team_are_ids(name, attribute):
    parsed = parse(**{name: "12"})

    assert getattr(parsed.query, attribute) == 12
    assert parsed.errors == {}


@pytest.mark.parametrize("value", ["laptops", "-3", "1.0", "1e3", "99999999999999999999"])
@pytest.mark.parametrize("name", ["category", "team"])
def test_text_where_an_id_is_expected_is_an_error(name, value):
    parsed = parse(**{name: value})

    assert parsed.query == QueueQuery()
    assert parsed.errors == {name: [f"Choose a {name} from the list."]}


@pytest.mark.parametrize(("value", "expected"), [("me", "me"), ("ME", "me"), ("none", "none"), ("42", 42)])
def test_assignee_is_me_nobody_or_an_id(value, expected):
    assert parse(assignee=value).query.assignee == expected


@pytest.mark.parametrize("value", ["ada@example.org", "someone", "-1"])
def test_an_assignee_that_is_not_me_none_or_an_id_is_an_error(value):
    parsed = parse(assignee=value)

    assert parsed.query.assignee is None
    assert parsed.errors == {"assignee": ["Choose someone from the list."]}


def test_requester_by_id():
    parsed = parse(requester="17")

    assert (parsed.query.requester_id, parsed.query.requester_email) == (17, None)


def test_requester_by_email_is_lowercased():
    parsed = parse(requester=" Rita@Example.ORG ")

    assert (parsed.query.requester_id, parsed.query.requester_email) == (None, "rita@example.org")


@pytest.mark.parametrize("value", ["rita", "rita@", "@example.org", "17 18", "<script>@x"])
def test_a_requester_that_is_neither_an_email_nor_an_id_is_an_error(value):
    parsed = parse(requester=value)

    assert (parsed.query.requester_id, parsed.query.requester_email) == (None, None)
    assert parsed.errors == {"requester": ["Enter an e-mail address or a user id."]}
    assert parsed.raw == {"requester": value.strip()}


# --- dates -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["created_from", "created_to", "updated_from", "updated_to"])
def test_dates(name):
    assert getattr(parse(**{name: "2026-02-28"}).query, name) == date(2026, 2, 28)


@pytest.mark.parametrize("value", ["2026-02-30", "28/02/2026", "2026-2-28", "yesterday", "2026-02-28T10:00"])
@pytest.mark.parametrize("name", ["created_from", "created_to", "updated_from", "updated_to"])
def test_a_bad_date_is_an_error_and_shown_again(name, value):
    parsed = parse(**{name: value})

    assert getattr(parsed.query, name) is None
    assert parsed.errors == {name: ["Enter a date as YYYY-MM-DD."]}
    assert parsed.raw == {name: value}


@pytest.mark.parametrize("prefix", ["created", "updated"])
def test_an_end_date_before_the_start_date_is_an_error_on_the_end(prefix):
    parsed = parse(**{f"{prefix}_from": "2026-03-02", f"{prefix}_to": "2026-03-01"})

    assert getattr(parsed.query, f"{prefix}_from") == date(2026, 3, 2)
    assert getattr(parsed.query, f"{prefix}_to") is None
    assert parsed.errors == {f"{prefix}_to": ["The end date is before the start date."]}


def test_the_same_start_and_end_day_is_one_whole_day():
    parsed = parse(created_from="2026-03-01", created_to="2026-03-01")

    assert parsed.errors == {}
    assert queues.day_bounds(parsed.query.created_from, parsed.query.created_to, UTC) == (
        datetime(2026, 3, 1, tzinfo=UTC),
        datetime(2026, 3, 2, tzinfo=UTC),
    )


def test_days_are_bounded_in_the_users_time_zone():
    zone = ZoneInfo("Europe/Paris")

    start, end = queues.day_bounds(date(2026, 3, 28), date(2026, 3, 29), zone)

    # The clocks go forward on 29 March 2026 in Paris: the second day has 23 hours.
    assert start == datetime(2026, 3, 27, 23, 0, tzinfo=UTC)
    assert end == datetime(2026, 3, 29, 22, 0, tzinfo=UTC)


# --- sorting ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", sorted(queues.SORT_COLUMNS))
def test_every_allowed_sort_both_ways(key):
    assert parse(sort=key).query.sort == Sort(key, is_descending=False)
    assert parse(sort=f"-{key}").query.sort == Sort(key, is_descending=True)


@pytest.mark.parametrize("value", ["password", "-", "--updated", "updated_at", "id", "search_vector"])
def test_a_sort_outside_the_allow_list_is_an_error_and_the_default_applies(value):
    parsed = parse(sort=value)

    assert parsed.query.sort == queues.DEFAULT_SORT
    assert parsed.errors == {"sort": ["Choose a sort from the list."]}


def test_age_sorts_on_created_the_other_way_round():
    youngest_first = Sort("age", is_descending=False)

    assert youngest_first.column == "created"
    assert youngest_first.is_column_descending is True
    assert Sort("age", is_descending=True).is_column_descending is False
    assert Sort("created", is_descending=True).is_column_descending is True


def test_clicking_a_header_toggles_the_current_sort_and_starts_others_their_natural_way():
    current = Sort("title", is_descending=False)

    assert current.toggled("title") == Sort("title", is_descending=True)
    assert current.toggled("updated") == Sort("updated", is_descending=True)
    assert current.toggled("priority") == Sort("priority", is_descending=False)
    assert Sort("title", is_descending=True).toggled("title") == Sort("title", is_descending=False)


def test_every_table_column_is_a_sort_and_the_sort_choices_cover_both_directions():
    assert set(queues.TABLE_COLUMNS) <= set(queues.SORT_COLUMNS)
    assert {value for value, _ in queues.SORT_CHOICES} == {
        f"{sign}{key}" for key in queues.SORT_COLUMNS for sign in ("", "-")
    }


# --- page size -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "size"), [("10", 10), ("1", 1), ("0", 1), ("100", 100), ("5000", 100)])
def test_page_size_is_kept_between_one_and_a_hundred(value, size):
    assert parse(size=value).query.size == size


@pytest.mark.parametrize("value", ["ten", "-5", "2.5"])
def test_a_page_size_that_is_not_a_number_is_the_default(value):
    parsed = parse(size=value)

    assert parsed.query.size == 50
    assert parsed.errors == {}


# --- cursors ---------------------------------------------------------------------------------------------------------

UPDATED = Sort("updated", is_descending=True)
STAMP = datetime(2026, 11, 24, 9, 30, 15, 123456, tzinfo=UTC)


@pytest.mark.parametrize(
    ("sort", "value"),
    [
        (UPDATED, STAMP),
        (Sort("priority", is_descending=False), 2),
        (Sort("title", is_descending=False), "Ünïcode “title” with | and ="),
        (Sort("team", is_descending=True), ""),
    ],
)
def test_a_cursor_round_trips(sort, value):
    cursor = Cursor(sort, value, 123)

    assert queues.decode_cursor(cursor.encode(), sort) == cursor


def test_after_and_before_cursors_are_parsed_for_the_current_sort():
    cursor = Cursor(UPDATED, STAMP, 5)

    assert parse(after=cursor.encode()).query.after == cursor
    assert parse(before=cursor.encode()).query.before == cursor
    assert not parse(after=cursor.encode()).query.is_first_page


def test_after_wins_over_before():
    after, before = Cursor(UPDATED, STAMP, 5), Cursor(UPDATED, STAMP, 9)

    query = parse(after=after.encode(), before=before.encode()).query

    assert (query.after, query.before) == (after, None)


@pytest.mark.parametrize(
    "raw",
    [
        "garbage",
        "!!!",
        raw_cursor(["-updated", STAMP.isoformat()]),  # no id
        raw_cursor(["-updated", STAMP.isoformat(), "5"]),  # id as text
        raw_cursor(["-updated", STAMP.isoformat(), 0]),
        raw_cursor(["-updated", STAMP.isoformat(), True]),
        raw_cursor(["-updated", "2026-11-24T09:30:15", 5]),  # naive time
        raw_cursor(["-updated", "not a time", 5]),
        raw_cursor(["-updated", 5, 5]),
        raw_cursor(["updated", STAMP.isoformat(), 5]),  # made for the other direction
        raw_cursor(["-title", "a", 5]),  # made for another column
        raw_cursor({"sort": "-updated"}),
        raw_cursor(["-updated", STAMP.isoformat(), 2**70]),
        "A" * 2000,
    ],
)
def test_a_tampered_or_foreign_cursor_is_ignored_with_a_notice(raw):
    parsed = parse(after=raw)

    assert parsed.query.after is None
    assert parsed.query.is_first_page
    assert list(parsed.errors) == ["cursor"]


@pytest.mark.parametrize("value", [True, 1.5, "2", None, [1]])
def test_an_integer_sort_cursor_needs_an_integer(value):
    sort = Sort("priority", is_descending=False)

    assert queues.decode_cursor(raw_cursor(["priority", value, 5]), sort) is None


def test_a_text_sort_cursor_needs_text():
    sort = Sort("title", is_descending=False)

    assert queues.decode_cursor(raw_cursor(["title", 5, 5]), sort) is None
    assert queues.decode_cursor(raw_cursor(["title", "x" * 1001, 5]), sort) is None
    assert queues.decode_cursor(raw_cursor(["title", "a\x00b", 5]), sort) is None


# --- links and saved views -------------------------------------------------------------------------------------------


def test_filter_params_leave_out_empty_values_and_the_default_sort():
    query = parse(
        queue="all",
        q="vpn",
        state=["pending", "new"],
        priority=["2", "1"],
        type="incident",
        category="3",
        team="4",
        assignee="none",
        requester="rita@example.org",
        created_from="2026-01-01",
        updated_to="2026-02-01",
        sort="-priority",
        size="20",
    ).query

    assert query.filter_params() == {
        "queue": "all",
        "q": "vpn",
        "state": ["new", "pending"],
        "priority": ["1", "2"],
        "type": "incident",
        "category": "3",
        "team": "4",
        "assignee": "none",
        "requester": "rita@example.org",
        "created_from": "2026-01-01",
        "updated_to": "2026-02-01",
        "sort": "-priority",
    }
    assert parse().query.filter_params() == {"queue": "team"}
    assert not parse().query.has_filters
    assert query.has_filters


def test_url_params_keep_the_size_and_reset_the_position_on_another_sort():
    cursor = Cursor(UPDATED, STAMP, 5)
    query = parse(queue="mine", size="10", after=cursor.encode()).query

    assert query.url_params() == [("queue", "mine"), ("size", "10")]
    assert query.url_params(after=cursor) == [("queue", "mine"), ("size", "10"), ("after", cursor.encode())]
    assert query.url_params(sort=Sort("title", is_descending=False)) == [
        ("queue", "mine"),
        ("sort", "title"),
        ("size", "10"),
    ]


def test_saved_parameters_parse_back_to_the_same_query():
    query = parse(queue="all", state=["new", "pending"], requester="12", sort="title").query

    again = parse_queue(queues.params_from_saved(query.filter_params()))

    assert again.query == query
    assert again.errors == {}


def test_saved_parameters_drop_unknown_keys_and_non_text_values():
    params = queues.params_from_saved(
        {"queue": "mine", "after": "x", "size": "5", "evil": "1", "state": ["new", 3, None], "team": 7}
    )

    assert params == {"queue": ["mine"], "state": ["new"]}


def test_restricting_to_choices_reports_ids_that_are_not_offered():
    parsed = parse(category="3", team="4", assignee="5")

    restricted = queues.restrict_to_choices(parsed, category_ids={1}, team_ids={4}, assignee_ids={6})

    assert (restricted.query.category_id, restricted.query.team_id, restricted.query.assignee) == (None, 4, None)
    assert restricted.errors == {
        "category": ["Choose a category from the list."],
        "assignee": ["Choose someone from your teams."],
    }
    assert restricted.raw == {"category": "3", "assignee": "5"}


def test_restricting_to_choices_keeps_me_and_nobody():
    for value in ("me", "none"):
        restricted = queues.restrict_to_choices(parse(assignee=value), category_ids=(), team_ids=(), assignee_ids=())
        assert restricted.query.assignee == value
        assert restricted.errors == {}


def test_parsing_never_raises_on_odd_input():
    odd = {name: ["\x00", "😀" * 300, "' OR 1=1 --", ""] for name in [*queues.FILTER_PARAMS, "after", "before", "size"]}

    parsed = parse_queue(odd)

    # The last value of a repeated single-valued parameter counts (as `QueryDict.get` does); it is only ever a bound
    # parameter, never SQL.
    assert parsed.query.queue == "team"
    assert parsed.query.q == "' OR 1=1 --"
    assert set(parsed.errors) == {
        "state",
        "priority",
        "type",
        "category",
        "team",
        "assignee",
        "requester",
        "created_from",
        "created_to",
        "updated_from",
        "updated_to",
        "sort",
        "cursor",
    }
