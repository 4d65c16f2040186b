"""A breach is never lost and never fires twice (issue 5 "Ledger and timers"), with real processes: a Celery worker
killed with SIGKILL before the instant, a Redis server restarted empty or flushed, and the same task delivered twice.
The worker runs in a process of its own (`tests/integration/processes.py`) on the committed test database; Postgres
is the truth and the reconciler (at worker start and from beat) re-plans whatever Redis lost."""

import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from django.utils import timezone

from itsm.queue import suppressed
from sla.models import Calendar, Clock, ClockEvent, SlaPolicy, SlaTarget
from sla.tasks import fire_due_clock_task
from tests.integration.celery_worker import broker_on
from tests.integration.processes import RedisServer, WorkerProcess, poll

pytestmark = pytest.mark.worker

# Its own database on the private Redis: the e-mail test uses 2, test_sla_timers.py 5, development 0 and 1.
BROKER_DB = 6
QUEUES = ("timers", "default")
# How late a breach may be recorded once a worker is up: the targets say 1 s; the margin is for a loaded machine.
FIRE_TOLERANCE_SECONDS = 1.5
VISIBILITY_TIMEOUT_SECONDS = 1

Workers = Callable[..., WorkerProcess]


def _policy(seconds: int) -> None:
    always, _ = Calendar.objects.get_or_create(is_24x7=True, defaults={"name": "24×7", "time_zone": "UTC"})
    policy = SlaPolicy.objects.create(name=f"{seconds} seconds", calendar=always)
    SlaTarget.objects.create(
        policy=policy, metric=SlaTarget.Metric.RESOLUTION, warning_percents=[],
        p1_seconds=seconds, p2_seconds=seconds, p3_seconds=seconds, p4_seconds=seconds,
    )  # fmt: skip


def _new_clock(desk: Any, title: str) -> tuple[Clock, datetime]:
    clock = Clock.objects.get(ticket=desk.ticket(title=title))
    assert clock.due_at is not None
    return clock, clock.due_at


def _breaches(clock: Clock) -> list[ClockEvent]:
    return list(ClockEvent.objects.filter(clock=clock, kind=ClockEvent.Kind.BREACHED))


def _wait_for_breach(clock: Clock, until: datetime) -> list[ClockEvent]:
    poll(lambda: bool(_breaches(clock)), max((until - timezone.now()).total_seconds(), 0))
    return _breaches(clock)


def _settle(seconds: float = 1.0) -> None:
    # Lets a duplicate that is still in flight land before "exactly one" is checked (not an assertion by itself).
    time.sleep(seconds)


def _startup_reconcile_done(worker: WorkerProcess) -> None:
    assert poll(lambda: re.search(r"sla\.reconcile\[[^]]+\] succeeded", worker.text()) is not None, 20), worker.text()


def _reserved_task_ids(client: redis.Redis) -> list[str]:
    """Ids of the messages a worker holds unacknowledged (kombu's `unacked` hash: `[message, exchange, key]`)."""
    return [json.loads(raw)[0]["headers"]["id"] for raw in client.hvals("unacked")]


def _instant(epoch: float | None) -> datetime:
    assert epoch is not None
    return datetime.fromtimestamp(epoch, tz=UTC)


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    started: list[WorkerProcess] = []

    def start(broker_url: str, **options: Any) -> WorkerProcess:
        worker = WorkerProcess(tmp_path, broker_url, **options)
        started.append(worker)
        worker.wait_ready()
        return worker

    yield start
    for worker in started:  # before the committed database is emptied
        worker.kill()


@pytest.fixture
def private_broker(settings) -> Iterator[str]:  # type: ignore[no-untyped-def]
    with broker_on(settings.REDIS_URL, BROKER_DB, QUEUES) as url:
        client = redis.Redis.from_url(url)
        client.flushdb()  # also the `unacked` hash a killed worker leaves behind
        yield url
        client.flushdb()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    try:
        with broker_on(server.url(), 0, QUEUES):
            yield server
    finally:
        server.stop()


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_before_the_instant_is_replaced_and_the_breach_fires_once(
    committed_db, desk, private_broker, workers
) -> None:  # type: ignore[no-untyped-def]
    # given: a worker holding the eta task of a clock due in 8 s
    first = workers(private_broker)
    _startup_reconcile_done(first)
    _policy(8)
    clock, breach_at = _new_clock(desk, "Server room too hot")
    client = redis.Redis.from_url(private_broker)
    assert poll(lambda: len(_reserved_task_ids(client)) == 1, 10), "the worker never took the eta task"
    [held_task_id] = _reserved_task_ids(client)

    # when: it is killed before the instant, unacknowledged, and a new worker starts (with a short visibility
    # timeout, so Redis also hands it the killed worker's message again)
    first.kill()
    assert timezone.now() < breach_at
    assert _breaches(clock) == []
    time.sleep(VISIBILITY_TIMEOUT_SECONDS + 0.5)  # the message must be older than the timeout when the worker starts
    second = workers(private_broker, extra_env={"CELERY_VISIBILITY_TIMEOUT_SECONDS": str(VISIBILITY_TIMEOUT_SECONDS)})

    # then: the breach fires at its instant (or at once, if the new worker came up after it), exactly once, although
    # both the re-delivered message and the start-up reconciler's eta task ran
    events = _wait_for_breach(clock, until=max(breach_at, _instant(second.ready_at)) + timedelta(seconds=10))
    assert poll(lambda: f"sla.fire_due_clock[{held_task_id}] succeeded" in second.text(), 10), second.text()[-2000:]
    _settle()
    events = _breaches(clock)
    assert [(event.threshold, event.at) for event in events] == [(100, breach_at)]
    latest = max(breach_at, _instant(second.ready_at)) + timedelta(seconds=FIRE_TOLERANCE_SECONDS)
    assert events[0].recorded_at <= latest
    clock.refresh_from_db()
    assert (clock.state, clock.breached_at, clock.next_deadline_at) == (Clock.State.RUNNING, breach_at, None)


@pytest.mark.django_db(transaction=True)
def test_the_same_task_delivered_twice_leaves_one_breach(committed_db, desk, private_broker, workers) -> None:  # type: ignore[no-untyped-def]
    # given: two pool processes, and a clock whose own wake-up is not sent
    worker = workers(private_broker, pool="prefork", concurrency=2)
    _startup_reconcile_done(worker)
    _policy(3)
    with suppressed():
        clock, breach_at = _new_clock(desk, "Duplicated wake-up")

    # when: the same task (same id) is sent twice for the same instant, so both run side by side
    task_id = str(uuid.uuid4())
    for _ in range(2):
        fire_due_clock_task.apply_async((clock.pk,), eta=breach_at, task_id=task_id)

    # then: both deliveries ran; one fired the breach at its instant, the other found it fired
    pattern = re.compile(rf"sla\.fire_due_clock\[{task_id}\] succeeded in [0-9.e-]+s: (.*)")
    timeout = (breach_at - timezone.now()).total_seconds() + 15
    assert poll(lambda: len(pattern.findall(worker.text())) == 2, timeout), worker.text()[-2000:]
    assert sorted(pattern.findall(worker.text())) == ["['breached:100']", "[]"]
    events = _breaches(clock)
    assert [(event.threshold, event.at) for event in events] == [(100, breach_at)]
    assert events[0].recorded_at <= breach_at + timedelta(seconds=FIRE_TOLERANCE_SECONDS)


@pytest.mark.django_db(transaction=True)
def test_after_a_redis_restart_the_beat_reconciler_replans_and_the_breach_fires_once(
    committed_db, desk, own_redis, workers
) -> None:  # type: ignore[no-untyped-def]
    # given: a worker with beat (reconciler every 2 s) holding the eta task of a clock due in 8 s
    worker = workers(own_redis.url(), beat_seconds=2)
    _startup_reconcile_done(worker)
    _policy(8)
    clock, breach_at = _new_clock(desk, "Core switch flapping")
    assert poll(lambda: len(_reserved_task_ids(own_redis.client())) == 1, 10), "the worker never took the eta task"

    # when: Redis restarts empty (the message is gone, and the worker drops its eta timers with the connection)
    restarted_at = len(worker.text())
    own_redis.restart()
    assert _reserved_task_ids(own_redis.client()) == []
    # A worker that loses the connection while it holds unacknowledged messages may exit ("Unrecoverable error:
    # AttributeError" from kombu's restore_unacked on the closed connection; docs/sla.md "Timers"). Production runs
    # workers under a supervisor that starts them again; so does this test.
    running = [worker]
    if poll(lambda: worker.process.poll() is not None, 2):
        running.append(workers(own_redis.url(), beat_seconds=2))

    # then: a reconciler pass after the restart planned it again, and it breached at its instant, once
    events = _wait_for_breach(clock, until=max(breach_at, _instant(running[-1].ready_at)) + timedelta(seconds=10))
    # (it planned the eta task again, or, when the replacement worker came up after the instant, fired it overdue)
    passes = re.findall(
        r"sla\.reconcile\[[^]]+\] succeeded in [0-9.e-]+s: \{'fired': ([01]), 'failed': 0, 'planned': ([01])\}",
        worker.text()[restarted_at:] + "".join(later.text() for later in running[1:]),
    )
    assert ("0", "1") in passes or ("1", "0") in passes, worker.text()[-3000:]
    _settle()
    events = _breaches(clock)
    assert [(event.threshold, event.at) for event in events] == [(100, breach_at)]
    latest = max(breach_at, _instant(running[-1].ready_at)) + timedelta(seconds=FIRE_TOLERANCE_SECONDS)
    assert events[0].recorded_at <= latest


@pytest.mark.django_db(transaction=True)
def test_with_redis_flushed_the_next_worker_replans_and_the_breach_fires_once(
    committed_db, desk, own_redis, workers
) -> None:  # type: ignore[no-untyped-def]
    # given: a worker holding the eta task of a clock due in 10 s
    first = workers(own_redis.url())
    _startup_reconcile_done(first)
    _policy(10)
    clock, breach_at = _new_clock(desk, "Backups failing")
    client = own_redis.client()
    assert poll(lambda: len(_reserved_task_ids(client)) == 1, 10), "the worker never took the eta task"

    # when: the worker stops (giving the message back to the queue) and Redis is flushed: the message is gone
    first.stop()
    assert client.llen("timers") == 1
    client.flushall()
    assert (client.llen("timers"), _reserved_task_ids(client)) == (0, [])
    second = workers(own_redis.url())

    # then: the new worker's start-up reconciler planned it again, and it breached at its instant, once
    events = _wait_for_breach(clock, until=max(breach_at, _instant(second.ready_at)) + timedelta(seconds=10))
    _settle()
    events = _breaches(clock)
    assert [(event.threshold, event.at) for event in events] == [(100, breach_at)]
    latest = max(breach_at, _instant(second.ready_at)) + timedelta(seconds=FIRE_TOLERANCE_SECONDS)
    assert events[0].recorded_at <= latest
