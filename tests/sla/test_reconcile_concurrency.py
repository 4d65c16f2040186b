"""Several reconcilers at once (two beat instances, a worker's start-up pass): each takes overdue clocks with
`FOR UPDATE SKIP LOCKED`, so none waits for another and no clock is fired twice. Real concurrent transactions on the
committed test database, one connection per thread; a `lock_timeout` turns any wait into an error instead of a hang."""

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.db import connection, transaction

from sla import services
from sla.models import Calendar, Clock, ClockEvent, SlaPolicy, SlaTarget
from tests.support import in_thread

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
TARGET_SECONDS = 60
JOIN_TIMEOUT_SECONDS = 30


@pytest.fixture
def frozen() -> Iterator[time_machine.Traveller]:
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


def _overdue_clocks(desk: Any, frozen: time_machine.Traveller, count: int) -> list[int]:
    always, _ = Calendar.objects.get_or_create(is_24x7=True, defaults={"name": "24×7", "time_zone": "UTC"})
    policy = SlaPolicy.objects.create(name="One minute", calendar=always)
    SlaTarget.objects.create(
        policy=policy, metric=SlaTarget.Metric.RESOLUTION, warning_percents=[],
        p1_seconds=TARGET_SECONDS, p2_seconds=TARGET_SECONDS, p3_seconds=TARGET_SECONDS, p4_seconds=TARGET_SECONDS,
    )  # fmt: skip
    tickets = [desk.ticket(title=f"Overdue {n}") for n in range(count)]
    frozen.move_to(T0 + timedelta(seconds=2 * TARGET_SECONDS))
    return list(Clock.objects.filter(ticket__in=tickets).order_by("pk").values_list("pk", flat=True))


def _breaches(clock_ids: list[int]) -> dict[int, int]:
    counts = dict.fromkeys(clock_ids, 0)
    for clock_id in ClockEvent.objects.filter(clock_id__in=clock_ids, kind="breached").values_list("clock_id", flat=1):
        counts[clock_id] += 1
    return counts


@pytest.mark.django_db(transaction=True)
def test_a_reconciler_skips_the_clocks_another_holds_without_waiting(committed_db, desk, frozen) -> None:  # type: ignore[no-untyped-def]
    # given: four overdue clocks, two of them locked by another reconciler's open batch
    clock_ids = _overdue_clocks(desk, frozen, 4)
    held, release = threading.Event(), threading.Event()

    def other_reconciler_batch() -> None:
        with transaction.atomic():
            list(Clock.objects.select_for_update().filter(pk__in=clock_ids[:2]))
            held.set()
            release.wait(JOIN_TIMEOUT_SECONDS)

    thread, outcome = in_thread(other_reconciler_batch, lock_timeout="2s")
    try:
        assert held.wait(JOIN_TIMEOUT_SECONDS)
        # when: this reconciler runs meanwhile (a wait for the held rows would hit the lock_timeout and raise)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '2s'")
        first = services.clocks_reconcile(batch_size=3)
        # then: it fired the two free clocks only
        assert first == {"fired": 2, "planned": 0, "failed": 0}
        assert _breaches(clock_ids) == {clock_ids[0]: 0, clock_ids[1]: 0, clock_ids[2]: 1, clock_ids[3]: 1}
    finally:
        release.set()
        thread.join(JOIN_TIMEOUT_SECONDS)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = 0")
    assert "error" not in outcome, outcome

    # and once the other batch is over, the next pass fires the rest, and nothing fires twice
    assert services.clocks_reconcile(batch_size=3) == {"fired": 2, "planned": 0, "failed": 0}
    assert _breaches(clock_ids) == dict.fromkeys(clock_ids, 1)
    assert Clock.objects.filter(pk__in=clock_ids, breached_at=T0 + timedelta(seconds=TARGET_SECONDS)).count() == 4


@pytest.mark.django_db(transaction=True)
def test_two_reconcilers_racing_fire_each_clock_once_and_never_wait(committed_db, desk, frozen) -> None:  # type: ignore[no-untyped-def]
    # given: 30 overdue clocks and two reconcilers that start together, in small batches
    clock_ids = _overdue_clocks(desk, frozen, 30)
    start = threading.Barrier(2, timeout=JOIN_TIMEOUT_SECONDS)

    def reconciler() -> dict[str, int]:
        start.wait()
        return services.clocks_reconcile(batch_size=4)

    # when
    runs = [in_thread(reconciler, lock_timeout="2s") for _ in range(2)]
    for thread, _outcome in runs:
        thread.join(JOIN_TIMEOUT_SECONDS)

    # then: neither waited (no lock_timeout error, no failed firing) and between them they fired every clock once
    results = [outcome.get("result", outcome.get("error")) for _thread, outcome in runs]
    assert all(isinstance(result, dict) and result["failed"] == 0 for result in results), results
    assert sum(result["fired"] for result in results) == 30
    assert _breaches(clock_ids) == dict.fromkeys(clock_ids, 1)
    assert services.clocks_reconcile() == {"fired": 0, "planned": 0, "failed": 0}
