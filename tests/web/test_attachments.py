import pytest

from tests.web.conftest import PNG_BYTES, png, signed_in, text_file
from tickets import services


@pytest.fixture
def files(desk):  # type: ignore[no-untyped-def]
    ticket = desk.ticket(attachments=[png("screen shot.png")])
    services.comment_add(
        actor=desk.agent, ticket=ticket, body="note", is_internal=True, attachments=[text_file("internal.txt")]
    )
    public = ticket.attachments.get(is_internal=False)
    internal = ticket.attachments.get(is_internal=True)
    return public, internal


def url(attachment) -> str:  # type: ignore[no-untyped-def]
    return f"/attachments/{attachment.pk}/"


@pytest.mark.parametrize("who", ["requester", "agent", "lead"])
def test_download_of_a_visible_attachment(desk, files, who):
    public, _ = files

    response = signed_in(getattr(desk, who)).get(url(public))

    assert response.status_code == 200
    assert b"".join(response.streaming_content) == PNG_BYTES
    assert response["Content-Type"] == "image/png"
    assert response["Content-Disposition"] == 'attachment; filename="screen shot.png"'
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Security-Policy"] == "default-src 'none'; sandbox"


def test_agent_downloads_an_internal_attachment(desk, files):
    _, internal = files

    response = signed_in(desk.agent).get(url(internal))

    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"line one\nline two\n"
    assert response["Content-Type"] == "text/plain"


@pytest.mark.parametrize(
    ("who", "which"),
    [
        ("other_requester", 0),
        ("network_agent", 0),
        ("requester", 1),
        ("other_requester", 1),
        ("network_agent", 1),
    ],
)
def test_download_is_not_found_for_who_may_not_see_it(desk, files, who, which):
    response = signed_in(getattr(desk, who)).get(url(files[which]))

    assert response.status_code == 404


def test_download_of_a_missing_attachment(desk):
    assert signed_in(desk.agent).get("/attachments/999999/").status_code == 404


def test_download_needs_sign_in(client, files):
    public, _ = files

    response = client.get(url(public))

    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next=/attachments/{public.pk}/"
