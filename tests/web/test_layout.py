import pytest
from django.contrib.auth.models import AnonymousUser
from django.template.loader import render_to_string
from django.test import RequestFactory

from tests.web.conftest import signed_in, template_names


@pytest.mark.parametrize(
    ("who", "desk_link", "admin_link"),
    [("requester", False, False), ("agent", True, False), ("admin", False, True)],
)
def test_navigation_shows_what_the_role_may_use(desk, who, desk_link, admin_link):
    response = signed_in(getattr(desk, who)).get("/portal/")

    content = response.content.decode()
    assert ('href="/desk/"' in content) is desk_link
    assert ('href="/admin/"' in content) is admin_link
    assert 'href="/portal/" aria-current="page"' in content
    assert getattr(desk, who).full_name in content
    assert '<form method="post" action="/accounts/logout/"' in content


def test_layout_has_a_skip_link_landmarks_and_the_stylesheet(desk):
    content = signed_in(desk.agent).get("/desk/").content.decode()

    assert '<a class="skip-link" href="#main">Skip to content</a>' in content
    assert '<main id="main"' in content
    assert '<nav class="site-nav" aria-label="Main">' in content
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in content
    assert 'href="/static/css/desk.css"' in content


def test_unknown_page_renders_the_404_template_in_the_layout(desk):
    response = signed_in(desk.requester).get("/no/such/page/")

    assert response.status_code == 404
    assert template_names(response)[:2] == ["404.html", "base.html"]
    assert b"Not found" in response.content


def test_404_for_an_anonymous_visitor_offers_sign_in(client, db):
    response = client.get("/no/such/page/")

    assert response.status_code == 404
    assert b'href="/accounts/login/"' in response.content
    assert b"Sign out" not in response.content


def test_403_template_uses_the_layout(desk):
    request = RequestFactory().get("/")
    request.user = AnonymousUser()

    content = render_to_string("403.html", request=request)

    assert "Not allowed" in content
    assert '<a class="skip-link" href="#main">' in content


def test_500_template_stands_alone():
    content = render_to_string("500.html")

    assert "Something went wrong on our side" in content
    assert "{%" not in content
