import hashlib
import logging
import re

import pytest
from django.core import mail
from django.core.cache import cache
from django.test import Client

from tests.factories import TEST_PASSWORD
from tests.web.conftest import signed_in

LOGIN_URL = "/accounts/login/"
THROTTLED = "Too many failed sign-in attempts. Try again in 15 minutes."
INVALID = "The e-mail address or the password is not correct."


def sign_in(client, email, password=TEST_PASSWORD, **extra):  # type: ignore[no-untyped-def]
    return client.post(LOGIN_URL, {"username": email, "password": password}, **extra)


def is_signed_in(client) -> bool:  # type: ignore[no-untyped-def]
    return "_auth_user_id" in client.session


@pytest.fixture
def limits(settings):  # type: ignore[no-untyped-def]
    settings.SECURITY_LOGIN_MAX_FAILURES_PER_ACCOUNT = 3
    settings.SECURITY_LOGIN_MAX_FAILURES_PER_IP = 5
    settings.SECURITY_LOGIN_WINDOW_SECONDS = 900
    settings.SECURITY_TRUST_X_FORWARDED_FOR = False
    return settings


@pytest.mark.parametrize(("who", "landing"), [("agent", "/desk/"), ("lead", "/desk/"), ("requester", "/portal/")])
def test_sign_in_lands_agents_on_the_desk_and_requesters_on_the_portal(client, desk, who, landing):
    user = getattr(desk, who)

    response = client.post(LOGIN_URL, {"username": user.email.upper(), "password": TEST_PASSWORD}, follow=True)

    assert response.status_code == 200
    assert response.redirect_chain == [("/", 302), (landing, 302)]
    assert int(client.session["_auth_user_id"]) == user.pk


def test_sign_in_page_renders_an_email_field(client, db):
    response = client.get(LOGIN_URL)

    assert response.status_code == 200
    assert b'type="email" name="username"' in response.content
    assert b'href="/accounts/password/reset/"' in response.content


def test_wrong_password_is_refused_with_a_form_error(client, desk):
    response = sign_in(client, desk.agent.email, "not-the-password")

    assert response.status_code == 200
    assert response.context["form"].non_field_errors() == [INVALID]
    assert not is_signed_in(client)


def test_account_is_throttled_after_the_limit_even_with_the_right_password(client, desk, limits):
    for _ in range(3):
        assert sign_in(client, desk.agent.email, "wrong").context["form"].non_field_errors() == [INVALID]

    response = sign_in(client, desk.agent.email)

    assert response.context["form"].non_field_errors() == [THROTTLED]
    assert THROTTLED.encode() in response.content
    assert not is_signed_in(client)


def test_an_unknown_account_gets_the_same_answers_as_a_real_one(client, desk, limits):
    def answers(email: str, address: str) -> list[list[str]]:
        return [
            sign_in(client, email, "wrong", REMOTE_ADDR=address).context["form"].non_field_errors() for _ in range(4)
        ]

    real = answers(desk.agent.email, "192.0.2.1")
    unknown = answers("nobody@example.org", "192.0.2.2")

    assert real == unknown == [[INVALID], [INVALID], [INVALID], [THROTTLED]]


def test_throttling_an_account_does_not_lock_out_another_account(client, desk, limits):
    for _ in range(3):
        sign_in(client, desk.agent.email, "wrong")

    response = sign_in(client, desk.agent2.email)

    assert response.status_code == 302
    assert is_signed_in(client)


def test_one_address_trying_many_accounts_is_throttled(client, desk, limits):
    for number in range(5):
        sign_in(client, f"guess{number}@example.org", "wrong", REMOTE_ADDR="198.51.100.7")

    from_same_address = sign_in(Client(), desk.agent.email, REMOTE_ADDR="198.51.100.7")
    from_other_address = sign_in(Client(), desk.agent.email, REMOTE_ADDR="198.51.100.8")

    assert from_same_address.context["form"].non_field_errors() == [THROTTLED]
    assert from_other_address.status_code == 302


def test_forwarded_address_counts_only_when_the_proxy_is_trusted(client, desk, limits):
    limits.SECURITY_TRUST_X_FORWARDED_FOR = True
    for number in range(5):
        sign_in(client, f"guess{number}@example.org", "wrong", HTTP_X_FORWARDED_FOR="10.9.9.9, 203.0.113.5")

    same_client_address = sign_in(Client(), desk.agent.email, HTTP_X_FORWARDED_FOR="203.0.113.5")
    other_client_address = sign_in(Client(), desk.agent.email, HTTP_X_FORWARDED_FOR="203.0.113.6")

    assert same_client_address.context["form"].non_field_errors() == [THROTTLED]
    assert other_client_address.status_code == 302


def test_forwarded_header_is_ignored_when_not_trusted(client, desk, limits):
    for number in range(5):
        sign_in(client, f"guess{number}@example.org", "wrong", HTTP_X_FORWARDED_FOR=f"203.0.113.{number}")

    response = sign_in(Client(), desk.agent.email, HTTP_X_FORWARDED_FOR="203.0.113.99")

    assert response.context["form"].non_field_errors() == [THROTTLED]


def test_successful_sign_in_clears_the_account_counter(client, desk, limits):
    for _ in range(2):
        sign_in(client, desk.agent.email, "wrong")
    assert sign_in(client, desk.agent.email).status_code == 302
    client.post("/accounts/logout/")

    for _ in range(2):
        sign_in(client, desk.agent.email, "wrong")
    response = sign_in(client, desk.agent.email)

    assert response.status_code == 302
    assert is_signed_in(client)


def test_cache_keys_hash_the_email_address(client, desk, limits):
    sign_in(client, "Ada@Example.org", "wrong")

    redis = cache._cache.get_client(None, write=False)  # type: ignore[attr-defined]
    keys = [key.decode() for key in redis.keys("*")]
    digest = hashlib.sha256(b"ada@example.org").hexdigest()
    assert any(digest in key for key in keys)
    assert not any("example.org" in key.lower() for key in keys)


def test_failed_sign_in_is_logged_without_the_password(client, desk, limits, caplog):
    caplog.set_level(logging.WARNING, logger="security.throttle")

    sign_in(client, desk.agent.email, "hunter2-secret")

    records = [r for r in caplog.records if r.getMessage() == "security.login_failed"]
    assert len(records) == 1
    assert records[0].account_failures == 1  # type: ignore[attr-defined]
    assert records[0].ip_failures == 1  # type: ignore[attr-defined]
    assert records[0].ip == "127.0.0.1"  # type: ignore[attr-defined]
    assert "hunter2-secret" not in str(records[0].__dict__)


def test_signed_in_user_visiting_the_login_page_goes_home(desk):
    response = signed_in(desk.requester).get(LOGIN_URL)

    assert response.status_code == 302
    assert response["Location"] == "/"


def test_logout_needs_a_post(desk):
    client = signed_in(desk.agent)

    refused = client.get("/accounts/logout/")
    assert refused.status_code == 405
    assert is_signed_in(client)

    response = client.post("/accounts/logout/")
    assert response.status_code == 302
    assert response["Location"] == LOGIN_URL
    assert not is_signed_in(client)


def test_pages_need_a_signed_in_user(client, db):
    for url in ("/", "/desk/", "/portal/", "/portal/new/", "/attachments/1/", "/accounts/password/change/"):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(f"{LOGIN_URL}?next="), url


def test_password_change(desk):
    client = signed_in(desk.requester)
    new_password = "a-brand-new-passphrase-42"

    response = client.post(
        "/accounts/password/change/",
        {"old_password": TEST_PASSWORD, "new_password1": new_password, "new_password2": new_password},
    )

    assert response.status_code == 302
    assert response["Location"] == "/accounts/password/change/done/"
    desk.requester.refresh_from_db()
    assert desk.requester.check_password(new_password)
    assert client.get("/accounts/password/change/done/").status_code == 200
    assert is_signed_in(client)  # the session survives its own password change


def test_password_change_with_a_wrong_old_password_changes_nothing(desk):
    client = signed_in(desk.requester)

    response = client.post(
        "/accounts/password/change/",
        {"old_password": "wrong", "new_password1": "another-long-pass-99", "new_password2": "another-long-pass-99"},
    )

    assert response.status_code == 200
    assert "old_password" in response.context["form"].errors
    desk.requester.refresh_from_db()
    assert desk.requester.check_password(TEST_PASSWORD)


def test_password_reset_sends_a_link_that_sets_a_new_password(client, desk, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    new_password = "reset-to-this-passphrase-7"

    response = client.post("/accounts/password/reset/", {"email": "RITA@example.org"})

    assert response.status_code == 302
    assert response["Location"] == "/accounts/password/reset/done/"
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["rita@example.org"]
    assert message.subject == "Reset your service desk password"
    link = re.search(r"http://testserver(/accounts/password/reset/[^/\s]+/[^/\s]+/)", message.body)
    assert link is not None

    form_page = client.get(link.group(1), follow=True)
    assert form_page.status_code == 200
    assert form_page.context["validlink"] is True
    set_url = form_page.redirect_chain[-1][0]
    done = client.post(set_url, {"new_password1": new_password, "new_password2": new_password})

    assert done.status_code == 302
    assert done["Location"] == "/accounts/password/reset/complete/"
    assert client.get("/accounts/password/reset/complete/").status_code == 200
    desk.requester.refresh_from_db()
    assert desk.requester.check_password(new_password)
    assert sign_in(Client(), desk.requester.email, new_password).status_code == 302
    # The link works once.
    reused = client.get(link.group(1), follow=True)
    assert reused.context["validlink"] is False


def test_password_reset_for_an_unknown_address_looks_the_same_and_sends_nothing(client, db, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"

    response = client.post("/accounts/password/reset/", {"email": "nobody@example.org"})

    assert response.status_code == 302
    assert response["Location"] == "/accounts/password/reset/done/"
    assert mail.outbox == []
