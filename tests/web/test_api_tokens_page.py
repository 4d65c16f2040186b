"""The "API tokens" page: list own tokens, create (the secret shown once), revoke with confirmation, others' tokens
are 404, and the page costs the same queries at any number of tokens."""

import re
import secrets

import pytest

from security.models import AuditLog
from security.tokens import ApiToken, hash_token
from tests.token_support import make_token
from tests.web.conftest import signed_in

URL = "/security/tokens/"
SECRET = re.compile(rb'value="(itsm_[0-9a-f]{8}_[0-9A-Za-z]{40})"')
# session, user, the user's tokens (memberships are read once for the form's scope choices)
PAGE_QUERIES = 4


def create(client, follow=False, **data):  # type: ignore[no-untyped-def]
    form = {"name": "Nagios", "scopes": ["tickets:read"], "lifetime_days": "30", "submission": secrets.token_hex(8)}
    return client.post(URL, {**form, **data}, follow=follow)


def test_anonymous_visitors_are_sent_to_sign_in(client, db):
    response = client.get(URL)

    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={URL}"


def test_the_user_menu_links_to_the_page(desk):
    response = signed_in(desk.requester).get("/portal/")

    assert b'href="/security/tokens/">API tokens</a>' in response.content


def test_creating_a_token_shows_the_secret_once_and_stores_its_hash(desk):
    client = signed_in(desk.agent)

    response = create(client, scopes=["tickets:read", "sla:read"])

    assert response.status_code == 200
    assert response["Cache-Control"] == "max-age=0, no-cache, no-store, must-revalidate, private"
    (secret,) = SECRET.findall(response.content)
    token = ApiToken.objects.get()
    assert (token.user, token.name, token.scopes) == (desk.agent, "Nagios", ["sla:read", "tickets:read"])
    assert token.secret_hash == hash_token(secret.decode())
    assert b"shown only this once" in response.content
    # The next visit lists the token by its prefix, never the secret.
    again = client.get(URL)
    assert secret not in again.content
    assert f"itsm_{token.prefix}_…".encode() in again.content
    assert AuditLog.objects.filter(action="api_token.create", actor=desk.agent).count() == 1


def test_a_requester_is_offered_only_the_ticket_scopes(desk):
    response = signed_in(desk.requester).get(URL)

    choices = response.context["form"].fields["scopes"].choices
    assert [value for value, _label in choices] == ["tickets:read", "tickets:write"]


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"scopes": ["comments:internal"]}, "scopes"),
        ({"scopes": []}, "scopes"),
        ({"name": "  "}, "name"),
        ({"lifetime_days": "5000"}, "lifetime_days"),
    ],
)
def test_bad_input_is_a_form_error_and_creates_nothing(desk, data, field):
    response = create(signed_in(desk.requester), **data)

    assert response.status_code == 400
    assert field in response.context["form"].errors
    assert SECRET.findall(response.content) == []
    assert ApiToken.objects.count() == 0
    assert AuditLog.objects.filter(action="api_token.create").count() == 0


def test_the_page_lists_only_the_users_own_tokens(desk):
    mine = make_token(desk.agent, name="Mine")
    theirs = make_token(desk.agent2, name="Theirs")

    response = signed_in(desk.agent).get(URL)

    assert [token.pk for token in response.context["page"].rows] == [mine.token.pk]
    assert f"itsm_{theirs.token.prefix}_".encode() not in response.content


def test_someone_elses_token_cannot_be_revoked_and_is_a_404(desk):
    theirs = make_token(desk.agent2, name="Theirs")
    client = signed_in(desk.agent)
    url = f"/security/tokens/{theirs.token.pk}/revoke/"

    assert client.get(url).status_code == 404
    assert client.post(url).status_code == 404
    assert client.get("/security/tokens/999999/revoke/").status_code == 404
    assert ApiToken.objects.get(pk=theirs.token.pk).revoked_at is None
    assert AuditLog.objects.filter(action="api_token.revoke").count() == 0


def test_revoking_asks_for_confirmation_then_revokes(desk):
    mine = make_token(desk.agent, name="Old CI")
    client = signed_in(desk.agent)
    url = f"/security/tokens/{mine.token.pk}/revoke/"

    confirm = client.get(url)
    assert confirm.status_code == 200
    assert b"Revoke the token \xe2\x80\x9cOld CI\xe2\x80\x9d?" in confirm.content
    assert ApiToken.objects.get(pk=mine.token.pk).revoked_at is None

    done = client.post(url, follow=True)

    assert done.redirect_chain == [(URL, 302)]
    token = ApiToken.objects.get(pk=mine.token.pk)
    assert token.revoked_by == desk.agent
    assert b"<td>revoked</td>" in done.content
    assert AuditLog.objects.filter(action="api_token.revoke", actor=desk.agent).count() == 1


def test_the_page_escapes_token_names(desk):
    make_token(desk.agent, name="<script>alert(1)</script>")

    response = signed_in(desk.agent).get(URL)

    assert b"<script>alert(1)</script>" not in response.content
    assert b"&lt;script&gt;alert(1)&lt;/script&gt;" in response.content


def test_the_page_costs_the_same_queries_at_any_number_of_tokens(desk, django_assert_num_queries):
    client = signed_in(desk.agent)
    make_token(desk.agent)
    with django_assert_num_queries(PAGE_QUERIES):
        small = client.get(URL)

    for number in range(30):
        make_token(desk.agent, name=f"Token {number}")
    with django_assert_num_queries(PAGE_QUERIES):
        large = client.get(URL)

    assert (len(small.context["page"].rows), len(large.context["page"].rows)) == (1, 31)


def test_the_list_pages_by_keyset(desk):
    created = [make_token(desk.agent, name=f"Token {n}").token for n in range(55)]
    client = signed_in(desk.agent)

    first = client.get(URL).context["page"]
    second = client.get(URL, {"before": first.next_before}).context["page"]

    assert [t.pk for t in first.rows] == [t.pk for t in reversed(created)][:50]
    assert [t.pk for t in second.rows] == [t.pk for t in reversed(created)][50:]
    assert second.next_before is None


def test_sending_the_same_form_twice_makes_one_token(desk):
    client = signed_in(desk.agent)
    first = create(client, submission="form-1")
    assert first.status_code == 200

    again = create(client, submission="form-1", follow=True)

    assert again.redirect_chain == [(URL, 302)]
    assert SECRET.findall(again.content) == []
    assert b"That form was already sent: its token was created and shown then." in again.content
    assert ApiToken.objects.count() == 1


def test_a_refused_form_can_be_corrected_and_sent_again(desk):
    client = signed_in(desk.requester)
    refused = create(client, submission="form-2", scopes=["tickets:read"], name="x" * 101)
    assert refused.status_code == 400

    accepted = create(client, submission="form-2", name="Fixed")

    assert accepted.status_code == 200
    assert ApiToken.objects.get().name == "Fixed"
