"""Desk queues: the list's query parameters, parsed and validated into a `QueueQuery` (pure: no ORM, no I/O).

The URL is the contract (browser tests, benchmarks and saved views are written against it):

    /desk/?queue=mine|unassigned|team|all|recent|breaching&q=<text>&state=<s>&state=<s2>&priority=1&type=incident
          &category=<id>&team=<id>&assignee=<id|me|none>&requester=<id or email>
          &created_from=YYYY-MM-DD&created_to=…&updated_from=…&updated_to=…
          &sort=<col>|-<col>&after=<cursor>&before=<cursor>&size=<n>
          &within=1h|4h|24h…&show=soon|breached|both   (the "Breaching soon" queue only)

Nothing here raises on bad input: an invalid value is left out of the query and reported in `ParsedQueue.errors`
under its parameter's name, so the page shows the error next to the field and still renders.
"""

import base64
import binascii
import json
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any, Final, Literal

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from tickets.state import OPEN_STATES, Priority, TicketState, TicketType, format_number

# --- queues --------------------------------------------------------------------------------------------------------

MINE, UNASSIGNED, TEAM, RECENT, ALL = "mine", "unassigned", "team", "recent", "all"
# Tickets with a running SLA clock due soon, sorted by the due instant: the rows come from `sla.selectors`
# (the view picks the selector; this module only parses its parameters).
BREACHING = "breaching"
QUEUES: Mapping[str, str] = {
    MINE: "My tickets",
    UNASSIGNED: "My teams' unassigned",
    TEAM: "My teams' open",
    BREACHING: "Breaching soon",
    RECENT: "Recently updated",
    ALL: "All visible",
}
DEFAULT_QUEUE = TEAM
# Queues that show open tickets unless the user picks states; the others show every state.
OPEN_BY_DEFAULT = frozenset({MINE, UNASSIGNED, TEAM})
# In lifecycle order: the State filter lists them so, and sorting by state follows it.
STATE_ORDER: tuple[str, ...] = tuple(TicketState.values)
DEFAULT_OPEN_STATES: tuple[str, ...] = tuple(s for s in STATE_ORDER if s in OPEN_STATES)

PAGE_SIZE = 50
MAX_PAGE_SIZE = 100
MAX_SEARCH_CHARS = 200
MAX_CURSOR_CHARS = 1000
MIN_DATE, MAX_DATE = date(1900, 1, 1), date(2999, 12, 31)

# `INC-000123`, `inc 123`, `req-45`, `REQ000045`: looks like a ticket number, so `q` also matches `number` exactly.
_NUMBER_PATTERN = re.compile(r"^\s*(INC|REQ)[\s-]?0*(\d{1,12})\s*$", re.IGNORECASE)
_NUMBER_TYPES = {"INC": TicketType.INCIDENT, "REQ": TicketType.REQUEST}
_DATE_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ID_PATTERN = re.compile(r"^\d{1,18}$")
_MAX_ID = 2**63 - 1


# --- sorting -------------------------------------------------------------------------------------------------------

SortKind = Literal["datetime", "int", "text"]


@dataclass(frozen=True)
class SortColumn:
    key: str
    label: str
    kind: SortKind
    # The first click on a header sorts this way: newest first for times, A→Z for text, P1 first for priority.
    descending_first: bool
    # The database column it keyset-pages on ("age" is "created" the other way round).
    column: str
    ascending_words: str
    descending_words: str
    is_inverted: bool = False


SORT_COLUMNS: Mapping[str, SortColumn] = {
    c.key: c
    for c in (
        SortColumn("updated", "Updated", "datetime", True, "updated", "oldest first", "newest first"),
        SortColumn("created", "Created", "datetime", True, "created", "oldest first", "newest first"),
        SortColumn("priority", "Priority", "int", False, "priority", "P1 first", "P4 first"),
        SortColumn("state", "State", "int", False, "state", "new to cancelled", "cancelled to new"),
        SortColumn("number", "Number", "text", True, "number", "lowest first", "highest first"),
        SortColumn("title", "Title", "text", False, "title", "A to Z", "Z to A"),
        SortColumn("requester", "Requester", "text", False, "requester", "A to Z", "Z to A"),
        SortColumn("category", "Category", "text", False, "category", "A to Z", "Z to A"),
        SortColumn("team", "Team", "text", False, "team", "A to Z", "Z to A"),
        SortColumn("assignee", "Assignee", "text", False, "assignee", "A to Z", "Z to A"),
        # Youngest first is the newest `created_at` first.
        SortColumn("age", "Age", "datetime", False, "created", "youngest first", "oldest first", is_inverted=True),
    )
}
# The table's columns, in order; each header is a sort link.
TABLE_COLUMNS: tuple[str, ...] = (
    "number",
    "title",
    "requester",
    "category",
    "priority",
    "state",
    "team",
    "assignee",
    "updated",
    "age",
)


@dataclass(frozen=True)
class Sort:
    key: str
    is_descending: bool

    @property
    def param(self) -> str:
        return f"-{self.key}" if self.is_descending else self.key

    @property
    def column(self) -> str:
        return SORT_COLUMNS[self.key].column

    @property
    def kind(self) -> SortKind:
        return SORT_COLUMNS[self.key].kind

    @property
    def is_column_descending(self) -> bool:
        """The direction on the database column (`age` ascending is `created_at` descending)."""
        return self.is_descending != SORT_COLUMNS[self.key].is_inverted

    def toggled(self, key: str) -> "Sort":
        """What clicking header `key` asks for: the other direction if it is the current sort, else its default."""
        if key == self.key:
            return Sort(key, not self.is_descending)
        return Sort(key, SORT_COLUMNS[key].descending_first)

    def label(self) -> str:
        column = SORT_COLUMNS[self.key]
        return f"{column.label}, {column.descending_words if self.is_descending else column.ascending_words}"


DEFAULT_SORT = Sort("updated", is_descending=True)
SORT_CHOICES: tuple[tuple[str, str], ...] = tuple(
    (sort.param, sort.label())
    for column in SORT_COLUMNS.values()
    for sort in (Sort(column.key, column.descending_first), Sort(column.key, not column.descending_first))
)


def parse_sort(raw: str) -> Sort | None:
    raw = raw.strip()
    descending = raw.startswith("-")
    key = raw[1:] if descending else raw
    if key not in SORT_COLUMNS:
        return None
    return Sort(key, descending)


# --- cursors -------------------------------------------------------------------------------------------------------

CursorValue = datetime | int | str


@dataclass(frozen=True)
class Cursor:
    """A position in the list: the sort it belongs to, the sort value of a row and the row's id."""

    sort: Sort
    value: CursorValue
    pk: int

    def encode(self) -> str:
        value = self.value.isoformat() if isinstance(self.value, datetime) else self.value
        return _pack([self.sort.param, value, self.pk])


def _pack(payload: list[Any]) -> str:
    """A cursor's wire form: compact JSON in unpadded URL-safe base64 (opaque to clients, safe in a query string)."""
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _unpack(raw: str) -> list[Any] | None:
    """The three items `_pack` wrote, or None for anything else (too long, not base64, not JSON, not a triple)."""
    if not raw or len(raw) > MAX_CURSOR_CHARS:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode())
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return payload if isinstance(payload, list) and len(payload) == 3 else None


def decode_cursor(raw: str, sort: Sort) -> Cursor | None:
    """The cursor `raw` for `sort`, or None when it is malformed, tampered with or made for another sort."""
    payload = _unpack(raw)
    if payload is None:
        return None
    sort_param, value, pk = payload
    if sort_param != sort.param or not _is_id(pk):
        return None
    decoded = _cursor_value(sort.kind, value)
    if decoded is None:
        return None
    return Cursor(sort, decoded, pk)


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= _MAX_ID


def _cursor_value(kind: SortKind, value: Any) -> CursorValue | None:
    if kind == "datetime":
        if not isinstance(value, str):
            return None
        try:
            stamp = datetime.fromisoformat(value)
        except ValueError:
            return None
        return stamp if stamp.tzinfo is not None else None
    if kind == "int":
        return value if isinstance(value, int) and not isinstance(value, bool) and abs(value) <= _MAX_ID else None
    return value if isinstance(value, str) and len(value) <= MAX_CURSOR_CHARS and "\x00" not in value else None


# --- "Breaching soon": the window and which clocks ----------------------------------------------------------------

# `within=`: how far ahead "soon" reaches. An allow-list, so saved views and links stay readable.
WITHIN_CHOICES: Mapping[str, int] = {
    "30m": 1800,
    "1h": 3600,
    "2h": 2 * 3600,
    "4h": 4 * 3600,
    "8h": 8 * 3600,
    "24h": 24 * 3600,
    "3d": 3 * 86_400,
    "7d": 7 * 86_400,
}
DEFAULT_WITHIN = "4h"
# `show=`: `soon` (due within the window, not yet breached), `breached` (past due, clock still running: the ticket
# is open and late) or `both` (one list by due instant: the breached ones first, then those due within the window).
SOON, BREACHED, BOTH = "soon", "breached", "both"
SHOW_CHOICES: Mapping[str, str] = {
    SOON: "Due soon, not yet breached",
    BREACHED: "Breached, still open",
    BOTH: "Breached, then due soon",
}
DEFAULT_SHOW = SOON


@dataclass(frozen=True)
class DueCursor:
    """A position in the "Breaching soon" list: the row's due instant and its clock id (the keyset)."""

    value: datetime
    pk: int

    def encode(self) -> str:
        return _pack(["due", self.value.isoformat(), self.pk])


def decode_due_cursor(raw: str) -> DueCursor | None:
    payload = _unpack(raw)
    if payload is None or payload[0] != "due" or not _is_id(payload[2]):
        return None
    value = _cursor_value("datetime", payload[1])
    if not isinstance(value, datetime):
        return None
    return DueCursor(value, payload[2])


# --- the query -----------------------------------------------------------------------------------------------------

ME: Final = "me"
NOBODY: Final = "none"
AssigneeFilter = int | Literal["me", "none"]

DATE_FIELDS = ("created_from", "created_to", "updated_from", "updated_to")
# The parameters a saved view keeps (not the page position or size), in the order links show them.
FILTER_PARAMS = (
    "queue",
    "q",
    "state",
    "priority",
    "type",
    "category",
    "team",
    "assignee",
    "requester",
    *DATE_FIELDS,
    "sort",
    "within",
    "show",
)


@dataclass(frozen=True)
class QueueQuery:
    queue: str = DEFAULT_QUEUE
    q: str = ""
    number: str | None = None  # `q` as a ticket number, when it looks like one
    states: tuple[str, ...] = ()
    priorities: tuple[int, ...] = ()
    type: str | None = None
    category_id: int | None = None
    team_id: int | None = None
    assignee: AssigneeFilter | None = None
    requester_id: int | None = None
    requester_email: str | None = None
    created_from: date | None = None
    created_to: date | None = None
    updated_from: date | None = None
    updated_to: date | None = None
    sort: Sort = DEFAULT_SORT
    after: Cursor | DueCursor | None = None
    before: Cursor | DueCursor | None = None
    size: int = PAGE_SIZE
    within: str = DEFAULT_WITHIN
    show: str = DEFAULT_SHOW

    @property
    def is_breaching(self) -> bool:
        return self.queue == BREACHING

    @property
    def within_seconds(self) -> int:
        return WITHIN_CHOICES[self.within]

    @property
    def effective_states(self) -> tuple[str, ...]:
        """The states listed: the ones picked, else the queue's default (open ones, or every state)."""
        if self.states:
            return self.states
        return DEFAULT_OPEN_STATES if self.queue in OPEN_BY_DEFAULT else ()

    @property
    def is_first_page(self) -> bool:
        return self.after is None and self.before is None

    @property
    def has_filters(self) -> bool:
        return self.filter_params() != {"queue": self.queue}

    def filter_params(self) -> dict[str, str | list[str]]:
        """The queue, filters and sort as URL parameters, leaving out empty values and the default sort."""
        params: dict[str, str | list[str]] = {"queue": self.queue}
        if self.q:
            params["q"] = self.q
        if self.states:
            params["state"] = list(self.states)
        if self.priorities:
            params["priority"] = [str(p) for p in self.priorities]
        if self.type:
            params["type"] = self.type
        if self.category_id is not None:
            params["category"] = str(self.category_id)
        if self.team_id is not None:
            params["team"] = str(self.team_id)
        if self.assignee is not None:
            params["assignee"] = str(self.assignee)
        if self.requester_id is not None:
            params["requester"] = str(self.requester_id)
        elif self.requester_email:
            params["requester"] = self.requester_email
        for name in DATE_FIELDS:
            value: date | None = getattr(self, name)
            if value is not None:
                params[name] = value.isoformat()
        if self.sort != DEFAULT_SORT and not self.is_breaching:
            params["sort"] = self.sort.param
        if self.is_breaching and self.within != DEFAULT_WITHIN:
            params["within"] = self.within
        if self.is_breaching and self.show != DEFAULT_SHOW:
            params["show"] = self.show
        return params

    def url_params(
        self,
        *,
        sort: Sort | None = None,
        after: Cursor | DueCursor | None = None,
        before: Cursor | DueCursor | None = None,
    ) -> list[tuple[str, str]]:
        """Parameters for a link to this query (another sort resets the position), ready for `urlencode`."""
        query = self if sort is None else replace(self, sort=sort)
        pairs: list[tuple[str, str]] = []
        for name, value in query.filter_params().items():
            pairs.extend((name, item) for item in ([value] if isinstance(value, str) else value))
        if self.size != PAGE_SIZE:
            pairs.append(("size", str(self.size)))
        if after is not None:
            pairs.append(("after", after.encode()))
        elif before is not None:
            pairs.append(("before", before.encode()))
        return pairs


@dataclass(frozen=True)
class ParsedQueue:
    query: QueueQuery
    # Parameter name → messages, for the fields that were left out of `query`.
    errors: dict[str, list[str]] = field(default_factory=dict)
    # What the user typed in text fields, to show it again next to its error.
    raw: dict[str, str] = field(default_factory=dict)


Params = Mapping[str, Sequence[str]]


def _printable(value: str) -> str:
    # PostgreSQL refuses NUL in text, and no filter needs control characters.
    return "".join(ch for ch in value if ch.isprintable() or ch == " ")


def _values(params: Params, name: str) -> list[str]:
    cleaned = (_printable(value).strip() for value in params.get(name, ()) if isinstance(value, str))
    return [value for value in cleaned if value]


def _one(params: Params, name: str) -> str:
    values = _values(params, name)
    return values[-1] if values else ""


def _parse_date(raw: str) -> date | None:
    if not _DATE_PATTERN.match(raw):
        return None
    try:
        value = date.fromisoformat(raw)
    except ValueError:
        return None
    # Far-off years are typos; they would also overflow "the day after" at the end of the calendar.
    return value if MIN_DATE <= value <= MAX_DATE else None


def ticket_number(text: str) -> str | None:
    """`text` as a canonical ticket number (`req-45` → `REQ-000045`), or None if it does not look like one."""
    match = _NUMBER_PATTERN.match(text)
    if match is None:
        return None
    return format_number(_NUMBER_TYPES[match.group(1).upper()], int(match.group(2)))


def parse_queue(params: Params, *, default_queue: str = DEFAULT_QUEUE) -> ParsedQueue:
    """Parse the list's GET parameters (`dict(request.GET.lists())`). Never raises."""
    errors: dict[str, list[str]] = {}
    raw: dict[str, str] = {}
    values: dict[str, Any] = {}

    def refuse(name: str, message: str) -> None:
        errors.setdefault(name, []).append(message)

    queue = _one(params, "queue")
    values["queue"] = queue if queue in QUEUES else default_queue

    q = " ".join(_one(params, "q").split())
    if len(q) > MAX_SEARCH_CHARS:
        raw["q"] = q
        refuse("q", f"Use at most {MAX_SEARCH_CHARS} characters.")
    elif q:
        values["q"] = q
        values["number"] = ticket_number(q)

    states = _values(params, "state")
    unknown = [s for s in states if s not in STATE_ORDER]
    if unknown:
        refuse("state", "Choose states from the list.")
    values["states"] = tuple(s for s in STATE_ORDER if s in states)

    priorities = _values(params, "priority")
    valid_priorities = {int(p) for p in priorities if p.isdigit() and int(p) in Priority.values}
    if len(valid_priorities) < len(set(priorities)):
        refuse("priority", "Choose a priority from P1 to P4.")
    values["priorities"] = tuple(sorted(valid_priorities))

    ticket_type = _one(params, "type")
    if ticket_type and ticket_type not in TicketType.values:
        refuse("type", "Choose incident or service request.")
    elif ticket_type:
        values["type"] = ticket_type

    for name, attribute in (("category", "category_id"), ("team", "team_id")):
        value = _one(params, name)
        if value and not _ID_PATTERN.match(value):
            refuse(name, f"Choose a {name} from the list.")
        elif value:
            values[attribute] = int(value)

    assignee = _one(params, "assignee").lower()
    if assignee in (ME, NOBODY):
        values["assignee"] = assignee
    elif assignee and _ID_PATTERN.match(assignee):
        values["assignee"] = int(assignee)
    elif assignee:
        refuse("assignee", "Choose someone from the list.")

    requester = _one(params, "requester")
    if requester and _ID_PATTERN.match(requester):
        values["requester_id"] = int(requester)
    elif requester:
        try:
            validate_email(requester)
        except ValidationError:
            raw["requester"] = requester
            refuse("requester", "Enter an e-mail address or a user id.")
        else:
            values["requester_email"] = requester.lower()

    for name in DATE_FIELDS:
        value = _one(params, name)
        if not value:
            continue
        parsed = _parse_date(value)
        if parsed is None:
            raw[name] = value
            refuse(name, "Enter a date as YYYY-MM-DD.")
        else:
            values[name] = parsed
    for start, end in (("created_from", "created_to"), ("updated_from", "updated_to")):
        if start in values and end in values and values[start] > values[end]:
            raw[end] = values.pop(end).isoformat()
            refuse(end, "The end date is before the start date.")

    sort_raw = _one(params, "sort")
    sort = parse_sort(sort_raw) if sort_raw else DEFAULT_SORT
    if sort is None:
        refuse("sort", "Choose a sort from the list.")
        sort = DEFAULT_SORT
    values["sort"] = sort

    if values["queue"] == BREACHING:
        within = _one(params, "within").lower()
        if within and within not in WITHIN_CHOICES:
            refuse("within", "Choose a window from the list.")
        elif within:
            values["within"] = within
        show = _one(params, "show").lower()
        if show and show not in SHOW_CHOICES:
            refuse("show", "Choose what to show from the list.")
        elif show:
            values["show"] = show

    size = _one(params, "size")
    if size.isdigit():
        values["size"] = max(1, min(int(size), MAX_PAGE_SIZE))

    # A cursor that does not decode (tampered, stale, made for another sort) is ignored: the first page is shown.
    after, before = _one(params, "after"), _one(params, "before")
    decode = decode_due_cursor if values["queue"] == BREACHING else (lambda raw: decode_cursor(raw, sort))
    if after:
        values["after"] = decode(after)
    elif before:
        values["before"] = decode(before)
    if (after or before) and values.get("after") is None and values.get("before") is None:
        refuse("cursor", "That page link is no longer valid, so the list starts again from the first page.")

    return ParsedQueue(query=QueueQuery(**values), errors=errors, raw=raw)


def restrict_to_choices(
    parsed: ParsedQueue,
    *,
    category_ids: Collection[int],
    team_ids: Collection[int],
    assignee_ids: Collection[int],
) -> ParsedQueue:
    """Leave out ids that are not among the form's choices (unknown category or team, someone outside the user's
    teams), reporting each under its field."""
    query, errors = parsed.query, {name: list(messages) for name, messages in parsed.errors.items()}
    raw = dict(parsed.raw)
    if query.category_id is not None and query.category_id not in category_ids:
        raw["category"] = str(query.category_id)
        errors.setdefault("category", []).append("Choose a category from the list.")
        query = replace(query, category_id=None)
    if query.team_id is not None and query.team_id not in team_ids:
        raw["team"] = str(query.team_id)
        errors.setdefault("team", []).append("Choose a team from the list.")
        query = replace(query, team_id=None)
    if isinstance(query.assignee, int) and query.assignee not in assignee_ids:
        raw["assignee"] = str(query.assignee)
        errors.setdefault("assignee", []).append("Choose someone from your teams.")
        query = replace(query, assignee=None)
    return ParsedQueue(query=query, errors=errors, raw=raw)


def params_from_saved(query: Mapping[str, Any]) -> dict[str, list[str]]:
    """A saved view's stored parameters (`filter_params()`: strings or lists of strings) as parsed `Params`;
    anything else in the mapping is dropped."""
    params: dict[str, list[str]] = {}
    for name in FILTER_PARAMS:
        value = query.get(name)
        items = value if isinstance(value, list) else [value]
        strings = [item for item in items if isinstance(item, str)]
        if strings:
            params[name] = strings
    return params


def day_bounds(day_from: date | None, day_to: date | None, zone: tzinfo) -> tuple[datetime | None, datetime | None]:
    """[start of `day_from`, start of the day after `day_to`) in `zone`: both days count in full."""
    start = datetime.combine(day_from, time.min, tzinfo=zone) if day_from else None
    end = datetime.combine(day_to + timedelta(days=1), time.min, tzinfo=zone) if day_to else None
    return start, end
