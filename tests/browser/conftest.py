"""Real page flows: Playwright drives Debian's Chromium (`/usr/bin/chromium`, or `ITSM_CHROMIUM`) against Django's
`live_server`, which serves the test database from a thread of this process.

One browser for the whole package, a fresh context (cookies, storage) per signed-in person per test. A failing test
leaves a screenshot of every page it had open in `.run/screens/`.

Why these fixtures are package-scoped and set DJANGO_ALLOW_ASYNC_UNSAFE: Playwright's sync API runs an asyncio event
loop in this (the test) thread for as long as Playwright is started. Django refuses ORM calls from a thread with a
running loop (SynchronousOnlyOperation), and the tests build data and check the database from this thread while the
loop is running. Nothing here is async: the loop only carries Playwright's messages, and the live server answers
requests in its own threads. The flag is set while Playwright runs and removed when it stops, which happens when the
last browser test is done, so the rest of the suite runs without it (and without a running loop). pytest-playwright's
fixtures are session-scoped, which would keep the loop, and the flag, alive for every test collected after these.
"""

import os
import re
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect, sync_playwright
from pytest_django.live_server_helper import LiveServer

from security.models import User
from tests.conftest import Desk
from tests.factories import TEST_PASSWORD

CHROMIUM = os.environ.get("ITSM_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # root in containers and CI; the pages are our own
    "--disable-gpu",
    "--disable-dev-shm-usage",  # small /dev/shm in containers
    "--disable-background-networking",  # no calls home, no component updates: the run stays offline and quiet
    "--disable-component-update",
]
# Fail fast: every page here answers in milliseconds; a missing element should not cost Playwright's default 30 s.
ACTION_TIMEOUT_MS = 10_000
EXPECT_TIMEOUT_MS = 5_000


_CALL_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    # The `browser_context` teardown reads this to decide whether to take screenshots.
    report = yield
    if report.when == "call":
        item.stash[_CALL_FAILED] = report.failed
    return report


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"tests/browser needs Chromium at {CHROMIUM}: `./run test` installs it (apt-get install chromium), "
            "or set ITSM_CHROMIUM to a Chromium or Chrome binary",
            pytrace=False,
        )
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    driver = sync_playwright().start()
    try:
        yield driver
    finally:
        driver.stop()
        if previous is None:
            del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield chromium
    chromium.close()


@pytest.fixture
def browser_context(
    browser: Browser, live_server: LiveServer, request: pytest.FixtureRequest
) -> Iterator[Callable[[], BrowserContext]]:
    """Opens contexts (one per person in the test) on the live server; screenshots their pages if the test failed."""
    contexts: list[BrowserContext] = []

    def open_context() -> BrowserContext:
        context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
        context.set_default_timeout(ACTION_TIMEOUT_MS)
        contexts.append(context)
        return context

    yield open_context
    try:
        _screenshot(request.node, [page for context in contexts for page in context.pages])
    finally:
        for context in contexts:
            context.close()


def _screenshot(item: pytest.Item, pages: list[Page]) -> None:
    """Screenshots of a failed test's pages; a passing test removes those an earlier run of it left."""
    folder = Path(item.config.rootpath) / ".run" / "screens"
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", item.name).strip("-")
    for old in folder.glob(f"{name}-*.png"):
        old.unlink()
    if not item.stash.get(_CALL_FAILED, False):
        return
    folder.mkdir(parents=True, exist_ok=True)
    for index, page in enumerate(pages, start=1):
        path = folder / f"{name}-{index}.png"
        try:
            page.screenshot(path=str(path), full_page=True)
        except Exception as exc:  # a failed screenshot must not hide the test's own failure
            item.add_report_section("teardown", "screenshot", f"{path}: {exc}")
        else:
            item.add_report_section("teardown", "screenshot", str(path))


@pytest.fixture
def live_desk(committed_db: None, desk: Desk) -> Desk:
    """The `desk` fixture, committed so the live server's threads see it (and emptied again after the test)."""
    return desk


@pytest.fixture
def signed_in(browser_context: Callable[[], BrowserContext]) -> Callable[[User], Page]:
    """A page in a new context, signed in as `user` through the real sign-in form."""

    def sign_in(user: User) -> Page:
        page = browser_context().new_page()
        page.goto("/accounts/login/")
        page.get_by_label("E-mail address").fill(user.email)
        page.get_by_label("Password").fill(TEST_PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("button", name="Sign out")).to_be_visible()
        return page

    return sign_in
