"""The agent's ticket page: the header edited in place (plain forms and htmx fragments), the reply box, stale edits,
who may reach the edit endpoints, query counts and time zones."""

import datetime as dt
import re
from typing import Any

import pytest
import time_machine
from django.utils import timezone

from security.models import AuditLog
from tests.factories import CategoryFactory, MembershipFactory
from tests.support import db_state
from tests.web.conftest import signed_in, template_names
from tickets import services
from tickets.models import Comment, Ticket, TicketEvent
from tickets.state import Level, PendingReason, Priority, TicketState

HX = {"HTTP_HX_REQUEST": "true"}
STALE = b"This ticket was changed since you opened it."


def page_url(ticket: Ticket, action: str = "") -> str:
    return f"/desk/tickets/{ticket.number}/{action + '/' if action else ''}"


def edit_url(ticket: Ticket, field: str) -> str:
    return f"/desk/tickets/{ticket.number}/edit/{field}/"


def is_fragment(response) -> bool:  # type: ignore[no-untyped-def]
    """An htmx answer: no layout around it."""
    content = response.content.decode()
    return "base.html" not in template_names(response) and "<html" not in content and "<main" not in content


def header_of(response) -> str:  # type: ignore[no-untyped-def]
    match = re.search(r'<header id="ticket-header".*?</header>', response.content.decode(), re.S)
    assert match is not None
    return match.group(0)


def select_options(html: str, name: str) -> list[str]:
    match = re.search(rf'<select name="{name}".*?</select>', html, re.S)
    assert match is not None, name
    return [label.strip() for label in re.findall(r"<option[^>]*>([^<]*)</option>", match.group(0))]


# --- the header shows every field ------------------------------------------------------------------------------------


def test_header_shows_every_field_with_an_edit_link_for_the_agent(desk):
    ticket = desk.ticket(title="Dock flickers", impact=Level.HIGH)
    services.ticket_assign(actor=desk.agent, ticket=ticket, assignee=desk.agent2)

    response = signed_in(desk.agent).get(page_url(ticket))

    header = header_of(response)
    for text in (
        ticket.number,
        "Dock flickers",
        "Rita Requester",
        "Incident",
        "Laptop",
        "Impact high, urgency medium",
        "P2 High",
        "Assigned",
        "Desktop support",
        "Bo Agent",
    ):
        assert text in header, text
    for field in ("category", "impact", "priority", "state", "team", "assignee"):
        assert f'href="{edit_url(ticket, field)}" hx-get="{edit_url(ticket, field)}"' in header, field
    assert response.context["editable"] == {"category", "impact", "priority", "state", "team", "assignee"}


def test_manager_sees_the_header_without_edit_links(desk):
    ticket = desk.ticket()

    response = signed_in(desk.manager).get(page_url(ticket))

    assert response.status_code == 200
    assert "/edit/" not in header_of(response)
    assert b'id="reply-panel"' not in response.content


def test_closed_ticket_cannot_change_team_or_assignee(desk):
    ticket = desk.ticket()
    services.ticket_transition(actor=desk.agent, ticket=ticket, to_state=TicketState.RESOLVED)
    services.ticket_transition(actor=desk.agent, ticket=ticket, to_state=TicketState.CLOSED)

    response = signed_in(desk.agent).get(page_url(ticket))

    # No transition leaves "closed"; category, impact and priority stay correctable for the reports.
    assert response.context["editable"] == {"category", "impact", "priority"}


# --- opening a field: the whole page without JavaScript, the header alone for htmx -----------------------------------


@pytest.mark.parametrize(
    ("field", "form_name", "control"),
    [
        ("category", "category", '<select name="category"'),
        ("impact", "impact", '<select name="impact"'),
        ("priority", "priority", '<select name="priority"'),
        ("state", "transition", '<select name="state"'),
        ("team", "team", '<select name="team"'),
        ("assignee", "assign", '<select name="assignee"'),
    ],
)
def test_edit_link_opens_the_field_as_a_page_or_a_fragment(desk, field, form_name, control):
    ticket = desk.ticket()
    client = signed_in(desk.agent)

    plain = client.get(edit_url(ticket, field))
    htmx = client.get(edit_url(ticket, field), **HX)

    assert plain.status_code == htmx.status_code == 200
    assert "base.html" in template_names(plain)
    assert is_fragment(htmx)
    assert template_names(htmx)[0] == "tickets/ticket/_header.html"
    for response in (plain, htmx):
        assert response.context["editing"] == form_name
        header = header_of(response)
        assert control in header
        assert " autofocus" in header  # the opened form takes the focus
        assert f'hx-get="/desk/tickets/{ticket.number}/header/"' in header  # Cancel
    assert "HX-Request" in htmx["Vary"]
    assert "HX-Request" in plain["Vary"]


def test_cancel_closes_the_field(desk):
    ticket = desk.ticket()
    client = signed_in(desk.agent)

    htmx = client.get(page_url(ticket, "header"), **HX)
    plain = client.get(page_url(ticket, "header"))

    assert htmx.status_code == 200
    assert is_fragment(htmx)
    assert htmx.context["editing"] is None
    assert "field-form" not in header_of(htmx)
    assert (plain.status_code, plain["Location"]) == (302, page_url(ticket))


def test_unknown_field_is_not_found(desk):
    ticket = desk.ticket()

    assert signed_in(desk.agent).get(edit_url(ticket, "title")).status_code == 404


# --- saving a field: plain POST redirects, htmx swaps the header and refreshes the timeline --------------------------


def _agent_also_in_network(desk):  # type: ignore[no-untyped-def]
    """Make Ada a member of Network too, so moving a ticket there keeps it in her sight."""
    MembershipFactory(team=desk.network, user=desk.agent)


FIELD_EDITS: list[tuple[str, str, Any, Any, str]] = [
    # (field, action, data for the ticket, expected columns, timeline summary)
    (
        "category",
        "category",
        lambda desk, t: {"category": desk.vpn.pk},
        lambda desk: {"category_id": desk.vpn.pk},
        "changed the category to VPN",
    ),
    (
        "impact",
        "impact",
        lambda desk, t: {"impact": "1", "urgency": "1"},
        lambda desk: {"impact": Level.HIGH, "urgency": Level.HIGH, "priority": Priority.P1},
        "set the priority to P1 Critical",
    ),
    (
        "priority",
        "priority",
        lambda desk, t: {"priority": "2", "reason": "Board demo"},
        lambda desk: {
            "priority": Priority.P2,
            "priority_is_overridden": True,
            "priority_override_reason": "Board demo",
        },
        "set the priority to P2 High by hand: “Board demo”",
    ),
    (
        "state",
        "transition",
        lambda desk, t: {"state": "pending", "pending_reason": PendingReason.AWAITING_VENDOR, "reason": ""},
        lambda desk: {"state": TicketState.PENDING, "pending_reason": PendingReason.AWAITING_VENDOR},
        "changed the state from New to Pending (awaiting vendor)",
    ),
    (
        "team",
        "team",
        lambda desk, t: {"team": desk.network.pk, "assignee": desk.network_agent.pk},
        lambda desk: {"team_id": desk.network.pk, "assignee_id": desk.network_agent.pk, "state": "assigned"},
        "moved the ticket to team Network",
    ),
    (
        "assignee",
        "assign",
        lambda desk, t: {"assignee": desk.agent2.pk},
        lambda desk: {"assignee_id": desk.agent2.pk, "state": TicketState.ASSIGNED},
        "assigned the ticket to Bo Agent",
    ),
]


def _columns(ticket: Ticket, names) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return Ticket.objects.filter(pk=ticket.pk).values(*names).get()


@pytest.mark.parametrize(
    ("field", "action", "data", "expected", "summary"), FIELD_EDITS, ids=[f[0] for f in FIELD_EDITS]
)
def test_field_saved_with_a_plain_post_redirects_to_the_page(desk, field, action, data, expected, summary):
    _agent_also_in_network(desk)
    ticket = desk.ticket()
    client = signed_in(desk.agent)

    response = client.post(page_url(ticket, action), {"version": ticket.version, **data(desk, ticket)})

    assert (response.status_code, response["Location"]) == (302, page_url(ticket))
    wanted = expected(desk)
    assert _columns(ticket, wanted) == wanted
    page = client.get(response["Location"])
    assert summary in [entry.summary for entry in page.context["timeline"]]
    assert page.context["editing"] is None


@pytest.mark.parametrize(
    ("field", "action", "data", "expected", "summary"), FIELD_EDITS, ids=[f[0] for f in FIELD_EDITS]
)
def test_field_saved_with_htmx_swaps_the_header_and_refreshes_the_timeline(
    desk, field, action, data, expected, summary
):
    _agent_also_in_network(desk)
    ticket = desk.ticket()

    response = signed_in(desk.agent).post(
        page_url(ticket, action), {"version": ticket.version, **data(desk, ticket)}, **HX
    )

    assert response.status_code == 200
    assert is_fragment(response)
    assert template_names(response)[0] == "tickets/ticket/_update.html"
    wanted = expected(desk)
    assert _columns(ticket, wanted) == wanted
    content = response.content.decode()
    # The header is the main content (no out-of-band flag); the rest comes out of band.
    assert content.lstrip().startswith('<header id="ticket-header"')
    assert (
        '<section id="ticket-timeline" class="ticket-timeline" aria-labelledby="timeline-heading" hx-swap-oob="true">'
        in content
    )
    assert '<section id="ticket-files"' in content
    assert (
        'id="ticket-status" class="ticket-status" role="status" aria-live="polite" hx-swap-oob="innerHTML"' in content
    )
    assert summary in content
    assert response.context["editing"] is None
    # Focus goes back to the field's "Edit" link; the forms in the new header carry the new version.
    assert f'href="{edit_url(ticket, field)}"' in content
    assert "data-focus-after-swap" in content
    ticket.refresh_from_db()
    assert f'name="version" value="{ticket.version}"' in header_of(response)


def test_saving_with_htmx_says_so_in_the_status_line_not_in_the_next_page(desk):
    ticket = desk.ticket()
    client = signed_in(desk.agent)

    response = client.post(page_url(ticket, "impact"), {"version": 1, "impact": "1", "urgency": "3"}, **HX)

    assert b'<p class="message message--success">Impact and urgency changed.</p>' in response.content
    assert b"Impact and urgency changed." not in client.get(page_url(ticket)).content


def test_invalid_input_keeps_the_field_open_with_the_error(desk):
    ticket = desk.ticket()
    client = signed_in(desk.agent)
    before = db_state(ticket)

    plain = client.post(page_url(ticket, "priority"), {"version": 1, "priority": "1", "reason": ""})
    htmx = client.post(page_url(ticket, "priority"), {"version": 1, "priority": "1", "reason": ""}, **HX)

    assert plain.status_code == htmx.status_code == 400
    assert is_fragment(htmx)
    for response in (plain, htmx):
        assert response.context["editing"] == "priority"
        assert response.context["forms"]["priority"].errors == {"reason": ["Say why."]}
        assert "Say why." in header_of(response)
    assert db_state(ticket) == before


# --- stale edits -----------------------------------------------------------------------------------------------------


STALE_EDITS = [
    ("category", lambda desk: {"category": desk.vpn.pk}),
    ("impact", lambda desk: {"impact": "1", "urgency": "1"}),
    ("priority", lambda desk: {"priority": "1", "reason": "VIP"}),
    ("transition", lambda desk: {"state": "resolved", "pending_reason": "", "reason": ""}),
    ("team", lambda desk: {"team": desk.desktop.pk, "assignee": desk.agent2.pk}),
    ("assign", lambda desk: {"assignee": desk.agent.pk}),
]


@pytest.mark.parametrize("with_htmx", [False, True], ids=["plain", "htmx"])
@pytest.mark.parametrize(("action", "data"), STALE_EDITS, ids=[edit[0] for edit in STALE_EDITS])
def test_stale_edit_is_refused_with_the_fresh_header_and_changes_nothing(desk, action, data, with_htmx):
    # given: Ada opened the ticket at version 1, then Bo started work on it
    ticket = desk.ticket()
    opened_version = ticket.version
    services.ticket_transition(actor=desk.agent2, ticket=ticket, to_state=TicketState.IN_PROGRESS)
    before = db_state(ticket)

    # when: Ada saves from her stale page
    response = signed_in(desk.agent).post(
        page_url(ticket, action),
        {"version": opened_version, **data(desk)},
        **(HX if with_htmx else {}),
    )

    # then: 409, the message, and the header as it is now; nothing written
    assert response.status_code == 409
    header = header_of(response)
    assert STALE.decode() in header
    assert 'role="alert"' in header
    assert "In progress" in header
    assert f'name="version" value="{opened_version + 1}"' in header
    assert response.context["editing"] is None
    assert is_fragment(response) is with_htmx
    assert db_state(ticket) == before


def test_stale_reply_box_is_not_a_conflict(desk):
    # A reply adds to the conversation, it overwrites nothing: it is never refused as stale.
    ticket = desk.ticket()
    services.ticket_transition(actor=desk.agent2, ticket=ticket, to_state=TicketState.IN_PROGRESS)

    response = signed_in(desk.agent).post(
        page_url(ticket, "reply"), {"version": 1, "visibility": "public", "body": "On my way"}, **HX
    )

    assert response.status_code == 200
    assert list(ticket.comments.values_list("body", flat=True)) == ["<p>On my way</p>"]


# --- who may reach the edit endpoints --------------------------------------------------------------------------------

ENDPOINTS = ["transition", "assign", "team", "category", "priority", "impact", "reply"]


@pytest.mark.parametrize("who", ["network_agent", "requester", "other_requester", "admin"])
def test_people_who_do_not_work_the_ticket_get_404_everywhere_and_change_nothing(desk, who):
    ticket = desk.ticket()
    before = db_state(ticket)
    client = signed_in(getattr(desk, who))
    data = {
        "version": 1,
        "state": "in_progress",
        "assignee": desk.agent.pk,
        "team": desk.network.pk,
        "category": desk.vpn.pk,
        "priority": "1",
        "reason": "x",
        "impact": "1",
        "urgency": "1",
        "visibility": "internal",
        "body": "hello",
    }

    for field in ("category", "impact", "priority", "state", "team", "assignee"):
        assert client.get(edit_url(ticket, field)).status_code == 404, field
        assert client.get(edit_url(ticket, field), **HX).status_code == 404, field
    assert client.get(page_url(ticket, "header"), **HX).status_code == 404
    for action in ENDPOINTS:
        assert client.post(page_url(ticket, action), data).status_code == 404, action
        assert client.post(page_url(ticket, action), data, **HX).status_code == 404, action

    assert db_state(ticket) == before


def test_manager_may_read_but_not_open_a_field(desk):
    ticket = desk.ticket()
    client = signed_in(desk.manager)

    assert client.get(page_url(ticket)).status_code == 200
    for field in ("category", "impact", "priority", "state", "team", "assignee"):
        assert client.get(edit_url(ticket, field)).status_code == 404, field


def test_manager_posting_an_edit_is_refused_and_changes_nothing(desk):
    ticket = desk.ticket()
    before = db_state(ticket)

    response = signed_in(desk.manager).post(page_url(ticket, "impact"), {"version": 1, "impact": "1", "urgency": "1"})

    assert response.status_code == 403
    assert "You can view this ticket but not change it." in header_of(response)
    assert db_state(ticket) == before


# --- pickers ---------------------------------------------------------------------------------------------------------


def test_category_picker_groups_categories_by_parent(desk):
    hardware = CategoryFactory(name="Hardware", slug="hardware", default_team=desk.desktop, sort_order=1)
    monitor = CategoryFactory(name="Monitor", slug="monitor", parent=hardware, default_team=desk.desktop)
    CategoryFactory(name="Retired", slug="retired", default_team=desk.desktop, is_active=False)
    ticket = desk.ticket()

    response = signed_in(desk.agent).get(edit_url(ticket, "category"), **HX)

    assert response.context["forms"]["category"].fields["category"].choices == [
        ("", "Choose a category"),
        (desk.laptop.pk, "Laptop"),
        (desk.phishing.pk, "Phishing (confidential)"),
        (desk.vpn.pk, "VPN"),
        ("Hardware", [(monitor.pk, "Monitor")]),
    ]
    assert '<optgroup label="Hardware">' in header_of(response)
    assert f'<option value="{desk.laptop.pk}" selected>Laptop</option>' in header_of(response)


def test_team_picker_lists_teams_and_only_the_chosen_team_s_members(desk):
    ticket = desk.ticket()
    client = signed_in(desk.agent)

    own_team = client.get(edit_url(ticket, "team"), **HX)
    other_team = client.get(f"{edit_url(ticket, 'team')}?team={desk.network.pk}", **HX)

    assert select_options(header_of(own_team), "team") == ["Desktop support", "Network", "Security"]
    assert select_options(header_of(own_team), "assignee") == ["Unassigned", "Ada Agent", "Bo Agent", "Lee Lead"]
    assert select_options(header_of(other_team), "assignee") == ["Unassigned", "Ned Network"]
    assert f'<option value="{desk.network.pk}" selected>Network</option>' in header_of(other_team)
    # Changing the team asks for the new team's members (htmx), without a page load.
    assert f'hx-get="{edit_url(ticket, "team")}" hx-trigger="change"' in header_of(own_team)


def test_team_picker_of_a_confidential_ticket_offers_security_teams_only(desk):
    ticket = desk.ticket(category=desk.phishing)

    response = signed_in(desk.security_agent).get(edit_url(ticket, "team"), **HX)

    assert select_options(header_of(response), "team") == ["Security"]


def test_assignee_picker_lists_only_the_team_s_members(desk):
    ticket = desk.ticket()

    response = signed_in(desk.agent).get(edit_url(ticket, "assignee"), **HX)

    assert select_options(header_of(response), "assignee") == ["Unassigned", "Ada Agent", "Bo Agent", "Lee Lead"]
    assert "Ned Network" not in response.content.decode()


def test_assignee_picker_leaves_out_the_team_s_service_accounts(desk):
    ticket = desk.ticket()
    MembershipFactory(team=desk.desktop, user__full_name="Monitoring bot", user__is_service_account=True)

    response = signed_in(desk.agent).get(edit_url(ticket, "assignee"), **HX)

    assert select_options(header_of(response), "assignee") == ["Unassigned", "Ada Agent", "Bo Agent", "Lee Lead"]


def test_a_service_account_holding_the_ticket_stays_in_the_picker(desk):
    ticket = desk.ticket()
    robot = MembershipFactory(team=desk.desktop, user__full_name="Monitoring bot", user__is_service_account=True).user
    services.ticket_assign(actor=desk.lead, ticket=ticket, assignee=robot)  # as an integration may, through the API

    response = signed_in(desk.agent).get(edit_url(ticket, "assignee"), **HX)

    options = select_options(header_of(response), "assignee")
    assert options == ["Unassigned", "Ada Agent", "Bo Agent", "Lee Lead", "Monitoring bot"]
    assert f'value="{robot.pk}" selected' in response.content.decode()


def test_team_move_with_someone_outside_the_new_team_is_refused_and_shows_its_members(desk):
    ticket = desk.ticket()
    before = db_state(ticket)

    response = signed_in(desk.agent).post(
        page_url(ticket, "team"), {"version": 1, "team": desk.network.pk, "assignee": desk.agent2.pk}, **HX
    )

    assert response.status_code == 400
    assert response.context["forms"]["team"].errors == {
        "assignee": ["Choose a member of the chosen team, or leave the ticket unassigned."]
    }
    assert select_options(header_of(response), "assignee") == ["Unassigned", "Ned Network"]
    assert db_state(ticket) == before


@pytest.mark.parametrize("with_htmx", [False, True], ids=["plain", "htmx"])
def test_moving_the_ticket_out_of_sight_goes_back_to_the_desk(desk, with_htmx):
    ticket = desk.ticket()
    client = signed_in(desk.agent)

    response = client.post(
        page_url(ticket, "team"), {"version": 1, "team": desk.network.pk, "assignee": ""}, **(HX if with_htmx else {})
    )

    ticket.refresh_from_db()
    assert (ticket.team_id, ticket.assignee_id) == (desk.network.pk, None)
    if with_htmx:
        assert (response.status_code, response["HX-Redirect"]) == (200, "/desk/")
    else:
        assert (response.status_code, response["Location"]) == (302, "/desk/")
    messages = [str(m) for m in response.wsgi_request._messages]  # type: ignore[attr-defined]
    assert messages == [f"Team and assignee changed. {ticket.number} has left your queues."]


def test_recategorising_into_a_confidential_category_goes_back_to_the_desk(desk):
    ticket = desk.ticket()

    response = signed_in(desk.agent).post(page_url(ticket, "category"), {"version": 1, "category": desk.phishing.pk})

    assert (response.status_code, response["Location"]) == (302, "/desk/")
    ticket.refresh_from_db()
    assert (ticket.is_confidential, ticket.team_id) == (True, desk.security.pk)


# --- state -----------------------------------------------------------------------------------------------------------


def test_state_form_marks_which_moves_need_a_reason(desk):
    ticket = desk.ticket()
    services.ticket_transition(actor=desk.agent, ticket=ticket, to_state=TicketState.IN_PROGRESS)

    header = header_of(signed_in(desk.agent).get(edit_url(ticket, "state"), **HX))

    assert select_options(header, "state") == [
        "Set pending → Pending",
        "Resolve → Resolved",
        "Cancel → Cancelled",
    ]
    assert '<option value="pending" data-needs-pending-reason="true">' in header
    assert '<option value="cancelled" data-needs-reason="true">' in header
    assert "data-transition-form" in header


def test_reopen_from_the_desk_needs_a_reason(desk):
    ticket = desk.ticket()
    services.ticket_transition(actor=desk.agent, ticket=ticket, to_state=TicketState.RESOLVED)
    client = signed_in(desk.agent)
    header = header_of(client.get(edit_url(ticket, "state"), **HX))
    assert '<option value="in_progress" data-needs-reason="true">Reopen → In progress</option>' in header

    refused = client.post(
        page_url(ticket, "transition"), {"version": 2, "state": "in_progress", "pending_reason": "", "reason": ""}, **HX
    )
    done = client.post(
        page_url(ticket, "transition"),
        {"version": 2, "state": "in_progress", "pending_reason": "", "reason": "Still broken"},
        **HX,
    )

    assert refused.status_code == 400
    assert refused.context["forms"]["transition"].errors == {"reason": ["Say why."]}
    assert done.status_code == 200
    ticket.refresh_from_db()
    assert ticket.state == TicketState.IN_PROGRESS


def test_assign_to_me_with_htmx(desk):
    ticket = desk.ticket()
    client = signed_in(desk.agent)
    assert "Assign to me" in header_of(client.get(page_url(ticket)))

    response = client.post(page_url(ticket, "assign"), {"version": 1, "assignee": desk.agent.pk}, **HX)

    assert response.status_code == 200
    header = header_of(response)
    assert "Ada Agent" in header
    assert "Assign to me" not in header
    ticket.refresh_from_db()
    assert (ticket.assignee_id, ticket.state) == (desk.agent.pk, TicketState.ASSIGNED)


# --- reply box -------------------------------------------------------------------------------------------------------


def test_reply_box_switches_between_public_reply_and_internal_note(desk):
    ticket = desk.ticket()

    content = signed_in(desk.agent).get(page_url(ticket)).content.decode()

    assert "<legend>Send as</legend>" in content
    assert re.search(r'<input type="radio" name="visibility" value="public"[^>]*checked>\s*Public reply', content)
    assert re.search(r'<input type="radio" name="visibility" value="internal"[^>]*>\s*Internal note', content)
    assert "Only agents see this." in content
    assert 'enctype="multipart/form-data"' in content
    assert 'data-label-internal="Add internal note"' in content


def test_internal_note_with_htmx_refreshes_the_timeline_and_resets_the_box(desk):
    ticket = desk.ticket()
    client = signed_in(desk.agent)

    response = client.post(
        page_url(ticket, "reply"), {"version": 1, "visibility": "internal", "body": "Check the dock firmware"}, **HX
    )

    assert response.status_code == 200
    assert is_fragment(response)
    content = response.content.decode()
    assert content.lstrip().startswith('<section id="reply-panel"')
    assert (
        '<header id="ticket-header" class="ticket-head" aria-labelledby="ticket-title" hx-swap-oob="true">' in content
    )
    assert "timeline__entry--internal" in content
    assert "Check the dock firmware" in content
    assert "Internal note added." in content
    reply_form = response.context["forms"]["reply"]
    assert not reply_form.is_bound  # a fresh box, back on "public"
    assert list(Comment.objects.values_list("body", "is_internal")) == [("<p>Check the dock firmware</p>", True)]
    requester_page = signed_in(desk.requester).get(f"/portal/tickets/{ticket.number}/")
    assert b"Check the dock firmware" not in requester_page.content


def test_public_reply_with_a_file_and_htmx(desk):
    from tests.web.conftest import text_file

    ticket = desk.ticket()

    response = signed_in(desk.agent).post(
        page_url(ticket, "reply"),
        {"version": 1, "visibility": "public", "body": "Log attached", "attachments": [text_file("dock.log")]},
        **HX,
    )

    assert response.status_code == 200
    content = response.content.decode()
    assert "Reply sent." in content
    assert "dock.log" in content  # in the timeline and in the refreshed attachments panel
    assert list(ticket.attachments.values_list("filename", "is_internal")) == [("dock.log", False)]


def test_empty_reply_with_htmx_keeps_the_box_with_the_error(desk):
    ticket = desk.ticket()

    response = signed_in(desk.agent).post(
        page_url(ticket, "reply"), {"version": 1, "visibility": "internal", "body": " "}, **HX
    )

    assert response.status_code == 400
    assert is_fragment(response)
    assert response.context["forms"]["reply"].errors == {"body": ["This field is required."]}
    content = response.content.decode()
    # Still on "internal", and it shows.
    assert 'class="stack reply-form reply-form--internal"' in content
    assert "Add internal note" in content
    assert not Comment.objects.exists()


# --- layout and scripts ----------------------------------------------------------------------------------------------


def test_desk_pages_load_htmx_desk_js_and_the_shortcuts_dialog(desk):
    ticket = desk.ticket()

    content = signed_in(desk.agent).get(page_url(ticket)).content.decode()

    assert '<script src="/static/django_htmx/htmx-2.min.js" defer></script>' in content
    assert '<script src="/static/js/desk.js" defer></script>' in content
    assert '<dialog id="shortcuts-dialog" class="shortcuts" aria-labelledby="shortcuts-title">' in content
    assert "data-shortcuts-open" in content
    assert '<meta name="htmx-config"' in content


def test_portal_pages_load_htmx_but_not_the_desk_shortcuts(desk):
    ticket = desk.ticket()

    content = signed_in(desk.requester).get(f"/portal/tickets/{ticket.number}/").content.decode()

    assert '<script src="/static/django_htmx/htmx-2.min.js" defer></script>' in content
    assert "desk.js" not in content
    assert "shortcuts-dialog" not in content


# --- query counts ----------------------------------------------------------------------------------------------------

# Session, user, memberships; ticket (with its rating), team members, timeline, attachments, timeline names; the SLA
# panel's clocks and their segments (constant: tests/sla/test_panel_api.py).
DESK_TICKET_PAGE_QUERIES = 10


def grow_timeline(desk, ticket: Ticket, events: int) -> None:  # type: ignore[no-untyped-def]
    """Bring the ticket's timeline to `events` entries: replies, notes and reassignments (which need names)."""
    count = ticket.events.count()
    step = 0
    while count < events:
        kind = step % 4
        if kind == 0:
            services.comment_add(actor=desk.agent, ticket=ticket, body=f"reply {step}")
        elif kind == 1:
            services.comment_add(actor=desk.agent2, ticket=ticket, body=f"note {step}", is_internal=True)
        elif kind == 2:
            services.comment_add(actor=desk.requester, ticket=ticket, body=f"answer {step}")
        else:
            assignee = desk.agent2 if step % 8 == 3 else desk.agent
            services.ticket_assign(actor=desk.agent, ticket=ticket, assignee=assignee)
        count = ticket.events.count()
        step += 1


def test_ticket_page_queries_do_not_grow_with_the_timeline(desk, django_assert_num_queries):
    ticket = desk.ticket(title="Tracked")
    services.ticket_assign(actor=desk.agent, ticket=ticket, assignee=desk.agent)
    assert ticket.events.count() == 3
    client = signed_in(desk.agent)
    with django_assert_num_queries(DESK_TICKET_PAGE_QUERIES):
        small = client.get(page_url(ticket))

    grow_timeline(desk, ticket, 200)
    with django_assert_num_queries(DESK_TICKET_PAGE_QUERIES):
        large = client.get(page_url(ticket))

    assert len(small.context["timeline"]) == 3
    assert len(large.context["timeline"]) >= 200
    assert small.status_code == large.status_code == 200


def test_closed_ticket_page_shows_the_rating_without_another_query(desk, django_assert_num_queries):
    ticket = desk.ticket()
    services.ticket_assign(actor=desk.agent, ticket=ticket, assignee=desk.agent)  # as above: names to look up
    services.ticket_transition(actor=desk.agent, ticket=ticket, to_state=TicketState.RESOLVED)
    services.ticket_transition(actor=desk.requester, ticket=ticket, to_state=TicketState.CLOSED)
    services.satisfaction_rate(actor=desk.requester, ticket=ticket, score=2, comment="<b>Slow</b>")
    client = signed_in(desk.agent)

    with django_assert_num_queries(DESK_TICKET_PAGE_QUERIES):
        response = client.get(page_url(ticket))

    content = response.content.decode()
    assert "Requester's rating" in content
    assert "2 out of 5" in content
    assert "&lt;b&gt;Slow&lt;/b&gt;" in content


def test_htmx_edit_fragment_costs_no_timeline_queries(desk, django_assert_num_queries):
    ticket = desk.ticket()
    grow_timeline(desk, ticket, 20)
    client = signed_in(desk.agent)

    # Session, user, memberships, ticket, team members: the header alone.
    with django_assert_num_queries(5):
        client.get(edit_url(ticket, "impact"), **HX)


# --- time zones ------------------------------------------------------------------------------------------------------


WINTER_NOON = dt.datetime(2026, 1, 15, 12, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("zone", "instant", "shown", "iso"),
    [
        ("Europe/Berlin", WINTER_NOON, "15 Jan 2026 13:00 CET", "2026-01-15T13:00:00+01:00"),
        (
            "Europe/Berlin",
            dt.datetime(2026, 7, 15, 12, 0, tzinfo=dt.UTC),
            "15 Jul 2026 14:00 CEST",
            "2026-07-15T14:00:00+02:00",
        ),
        (
            "America/New_York",
            dt.datetime(2026, 1, 15, 3, 30, tzinfo=dt.UTC),
            "14 Jan 2026 22:30 EST",
            "2026-01-14T22:30:00-05:00",
        ),
        ("UTC", WINTER_NOON, "15 Jan 2026 12:00 UTC", "2026-01-15T12:00:00+00:00"),
        # An unknown or empty zone falls back to UTC instead of failing the page.
        ("Mars/Olympus_Mons", WINTER_NOON, "15 Jan 2026 12:00 UTC", "2026-01-15T12:00:00+00:00"),
        ("../../etc/passwd", WINTER_NOON, "15 Jan 2026 12:00 UTC", "2026-01-15T12:00:00+00:00"),
        ("", WINTER_NOON, "15 Jan 2026 12:00 UTC", "2026-01-15T12:00:00+00:00"),
    ],
)
def test_times_are_shown_in_the_viewer_s_zone_with_its_abbreviation(desk, zone, instant, shown, iso):
    with time_machine.travel(instant, tick=False):
        ticket = desk.ticket()
    desk.agent.time_zone = zone
    desk.agent.save(update_fields=["time_zone"])

    response = signed_in(desk.agent).get(page_url(ticket))

    content = response.content.decode()
    assert response.status_code == 200
    assert f">{shown}</time>" in content  # raised, updated and the timeline entry
    assert content.count(f">{shown}</time>") == 3
    # The machine-readable instant is the same moment, with the viewer's offset.
    assert content.count(f'<time datetime="{iso}">') == 3
    # The zone is the request's only: nothing leaks into the next one.
    assert timezone.get_current_timezone_name() == "UTC"


def test_requester_sees_portal_times_in_their_zone(desk):
    with time_machine.travel(dt.datetime(2026, 3, 1, 23, 30, tzinfo=dt.UTC), tick=False):
        ticket = desk.ticket()
    desk.requester.time_zone = "Asia/Tokyo"
    desk.requester.save(update_fields=["time_zone"])

    content = signed_in(desk.requester).get(f"/portal/tickets/{ticket.number}/").content.decode()

    assert ">2 Mar 2026 08:30 JST</time>" in content


def test_changes_are_audited_once_per_save(desk):
    ticket = desk.ticket()
    audits = AuditLog.objects.count()

    signed_in(desk.agent).post(page_url(ticket, "category"), {"version": 1, "category": desk.vpn.pk}, **HX)

    assert list(AuditLog.objects.order_by("seq").values_list("action", flat=True))[audits:] == ["ticket.category"]
    assert TicketEvent.objects.filter(ticket=ticket, kind=TicketEvent.Kind.CATEGORY_CHANGED).count() == 1
