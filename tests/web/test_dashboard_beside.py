"""The dashboard's outcome statement on a second connection (`sla.reports.beside`): the same figures and query count
as one connection, a real second backend that is closed afterwards, errors raised in the request, a fallback when no
second connection can be opened, and one connection when a caller's transaction is open.

These tests commit (the second connection sees only committed rows), so the data is built in transactional tests."""

import logging
import threading
import time
from typing import Any

import pytest
from django.db import ProgrammingError, connection, transaction
from django.db.backends.signals import connection_created
from django.test.utils import CaptureQueriesContext, override_settings

from sla import reports
from tests.sla.dashboard_data import build_history
from tests.web.conftest import signed_in
from tests.web.test_dashboard import API, PAGE, PAGE_QUERIES, chart_data, get, tiles

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def desk(committed_db, desk):  # type: ignore[no-untyped-def]
    """The desk of tests/conftest.py, committed."""
    return desk


@pytest.fixture(autouse=True)
def _concurrent(settings):  # type: ignore[no-untyped-def]
    """On, whatever the environment says (tests that turn it off say so)."""
    settings.REPORT_CONCURRENT_STATEMENTS = True


def wait_gone(pid: int) -> bool:
    deadline = time.monotonic() + 5
    while backend_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not backend_alive(pid)


def backend() -> tuple[int, int]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return threading.get_ident(), cursor.fetchone()[0]


def backend_of(q: reports.ReportQuery) -> tuple[int, int, bool]:
    return (*backend(), q.concurrent)


def backend_alive(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid])
        return bool(cursor.fetchone()[0])


def view_query(desk) -> reports.ReportQuery:  # type: ignore[no-untyped-def]
    from sla.views import dashboard_form

    form = dashboard_form(desk.manager, {})
    assert form.is_valid(), form.errors
    return form.report_query()


def test_the_page_and_the_api_show_the_same_figures_in_the_same_queries_either_way(desk) -> None:  # type: ignore[no-untyped-def]
    history = build_history(desk)
    client = signed_in(desk.manager)
    pages = {}
    answers = {}
    for concurrent in (False, True):
        with override_settings(REPORT_CONCURRENT_STATEMENTS=concurrent):
            with CaptureQueriesContext(connection) as captured:
                page = get(client, PAGE, {"policy": str(history.policy.pk)})
            assert page.status_code == 200
            # Outside a test's transaction the report transaction is BEGIN … COMMIT; the outcome statement is counted
            # whichever connection ran it.
            assert len(captured.captured_queries) == PAGE_QUERIES
            assert page.context["q"].concurrent is concurrent
            outcome_statements = [q for q in captured.captured_queries if "percentile_cont" in q["sql"]]
            assert len(outcome_statements) == 1
            pages[concurrent] = page
            answers[concurrent] = get(client, API, {"group_by": "team"}).json()
    sequential, concurrent_page = pages[False], pages[True]
    assert tiles(concurrent_page.content) == tiles(sequential.content)
    assert chart_data(concurrent_page.content) == chart_data(sequential.content)
    assert concurrent_page.context["teams"] == sequential.context["teams"]
    assert concurrent_page.context["breached_list"] == sequential.context["breached_list"]
    assert concurrent_page.context["at_risk_list"] == sequential.context["at_risk_list"]
    assert answers[True] == answers[False]
    # Not two empty pages: the known history's figures (tests/web/test_dashboard.py checks them one by one).
    assert tiles(sequential.content)["resolution_compliance"] == "Resolution compliance 66.7 % 2 met of 3"
    assert answers[True]["totals"]["resolution_finished"] == 3


def test_the_work_runs_in_another_thread_on_another_backend_that_is_closed_after(desk) -> None:  # type: ignore[no-untyped-def]
    here_thread, here_pid = backend()
    with reports.report_transaction(view_query(desk)) as q:
        assert q.concurrent
        thread, pid, nested = reports.beside(backend_of, q)()
        # Its own statements on the request's connection, meanwhile and after: still this backend.
        assert backend() == (here_thread, here_pid)
    assert thread != here_thread
    assert pid != here_pid
    assert nested is False  # the work itself does not start a third connection
    assert wait_gone(pid)


def test_the_second_connection_has_the_report_settings(desk) -> None:  # type: ignore[no-untyped-def]
    def report_settings(q: reports.ReportQuery) -> tuple[Any, ...]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_backend_pid(), current_setting('jit'), current_setting('work_mem'),"
                " current_setting('max_parallel_workers_per_gather')"
            )
            return tuple(cursor.fetchone())

    with reports.report_transaction(view_query(desk)) as q:
        assert q.concurrent
        side_pid, *side = reports.beside(report_settings, q)()
        here_pid, *here = report_settings(q)
    assert side_pid != here_pid
    assert side == ["off", reports.REPORT_WORK_MEM, "0"]
    # The request's connection has the same for the report transaction.
    assert here == ["off", reports.REPORT_WORK_MEM, "0"]


def test_an_error_on_the_second_connection_is_raised_in_the_request(desk) -> None:  # type: ignore[no-untyped-def]
    pids = []

    def bad_statement(q: reports.ReportQuery) -> None:
        pids.append(backend()[1])
        with connection.cursor() as cursor:
            cursor.execute("SELECT no_such_column FROM sla_clockoutcome")

    def bad_value(q: reports.ReportQuery) -> None:
        raise ValueError("nothing to see")

    with reports.report_transaction(view_query(desk)) as q:
        failing = reports.beside(bad_statement, q)
        with pytest.raises(ProgrammingError, match="no_such_column"):
            failing()
        with pytest.raises(ValueError, match="nothing to see"):
            reports.beside(bad_value, q)()
        # The request's own transaction is unharmed.
        assert backend()[1] > 0
    # The failed statement's connection is closed all the same.
    assert len(pids) == 1
    assert pids[0] != backend()[1]
    assert wait_gone(pids[0])


def test_a_request_that_fails_first_still_waits_for_and_closes_the_second_connection(desk) -> None:  # type: ignore[no-untyped-def]
    finished = []

    def slow(q: reports.ReportQuery) -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid() FROM pg_sleep(0.3)")
            pid = cursor.fetchone()[0]
        finished.append(pid)
        return pid

    def failing_request() -> None:
        with reports.report_transaction(view_query(desk)) as q:
            reports.beside(slow, q)
            raise RuntimeError("the request failed")

    with pytest.raises(RuntimeError, match="the request failed"):
        failing_request()
    # The report ended only after the statement it never collected had finished.
    assert len(finished) == 1
    assert wait_gone(finished[0])


def test_when_no_second_connection_opens_the_work_runs_on_the_request_connection(  # type: ignore[no-untyped-def]
    desk, monkeypatch, caplog
) -> None:
    here = backend()
    with reports.report_transaction(view_query(desk)) as q, caplog.at_level(logging.WARNING, logger="sla.reports"):
        # New connections go to a port where nothing listens (the request's connection is already open): refused.
        monkeypatch.setitem(connection.settings_dict, "PORT", "1")
        thread, pid, _nested = reports.beside(backend_of, q)()
    assert (thread, pid) == here
    assert "reports.beside_unconnected" in caplog.text


def test_any_failure_while_connecting_falls_back_to_the_request_connection(desk, caplog) -> None:  # type: ignore[no-untyped-def]
    """Not only refusals: a connection that opens but fails while being set up (here a `connection_created`
    receiver raising a TypeError) is closed, and the work runs on the request's connection."""
    opened = []

    def fail_on_the_side(sender, connection, **kwargs) -> None:  # type: ignore[no-untyped-def]
        if threading.current_thread().name == "report-beside":
            opened.append(connection.connection.get_backend_pid())
            raise TypeError("set-up failed")

    here = backend()
    connection_created.connect(fail_on_the_side)
    try:
        with reports.report_transaction(view_query(desk)) as q, caplog.at_level(logging.WARNING, logger="sla.reports"):
            thread, pid, _nested = reports.beside(backend_of, q)()
    finally:
        connection_created.disconnect(fail_on_the_side)
    assert (thread, pid) == here
    assert "set-up failed" in caplog.text
    assert len(opened) == 1
    assert wait_gone(opened[0])


def test_inside_a_callers_transaction_everything_runs_on_its_connection(desk) -> None:  # type: ignore[no-untyped-def]
    here = backend()
    with transaction.atomic(), reports.report_transaction(view_query(desk)) as q:
        assert not q.concurrent
        thread, pid, _nested = reports.beside(backend_of, q)()
    assert (thread, pid) == here


def test_the_setting_turns_it_off(desk) -> None:  # type: ignore[no-untyped-def]
    here = backend()
    with override_settings(REPORT_CONCURRENT_STATEMENTS=False), reports.report_transaction(view_query(desk)) as q:
        assert not q.concurrent
        thread, pid, _nested = reports.beside(backend_of, q)()
    assert (thread, pid) == here
