"""A real Celery worker for integration tests: in a thread of this process, on its own Redis database, so messages
left by a development server or another run never reach it and its messages never reach theirs."""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from celery import Celery
from celery.contrib.testing.worker import TestWorkController, start_worker
from celery.signals import task_postrun
from django.db import connections

from itsm import celery_app
from itsm.env import redis_url_with_db

WORKER_START_TIMEOUT_SECONDS = 20


def reset_producers(app: Celery) -> None:
    """Forget the app's pooled broker connections, so the next publish connects to the current `broker_url`. (The
    pools themselves live on in kombu's registry, keyed by URL, and are reused by the next test on the same URL.)"""
    # What Celery itself resets after a fork (`Celery._after_fork`), without sending the after-fork signal.
    app._pool = None
    app.amqp._producer_pool = None


def purge(app: Celery, queues: Sequence[str]) -> None:
    with app.connection_for_write() as connection:
        for queue in queues:
            connection.default_channel.queue_purge(queue)


class BoundedWorkController(TestWorkController):
    """The testing worker, except that a worker that never comes up fails the test instead of hanging it."""

    def ensure_started(self) -> None:
        if not self._on_started.wait(timeout=WORKER_START_TIMEOUT_SECONDS):
            self.terminate()
            raise RuntimeError(f"The Celery worker did not start within {WORKER_START_TIMEOUT_SECONDS} s")


def close_worker_connections(**kwargs: object) -> None:
    # Runs in the worker's thread: its database connection must not outlive the test (the test database is dropped
    # at the end of the session, which Postgres refuses while a connection is open).
    connections.close_all()


@contextmanager
def broker_on(redis_url: str, db: int, queues: Sequence[str]) -> Iterator[str]:
    """Point the app at Redis database `db`, empty `queues` before and after, and restore the app afterwards."""
    url = redis_url_with_db(redis_url, db)
    saved = {key: celery_app.conf[key] for key in ("broker_url", "worker_hijack_root_logger")}
    celery_app.conf.broker_url = url
    celery_app.conf.worker_hijack_root_logger = False  # keep pytest's and Django's log handlers
    reset_producers(celery_app)
    purge(celery_app, queues)
    try:
        yield url
    finally:
        purge(celery_app, queues)
        celery_app.conf.update(saved)
        reset_producers(celery_app)


@contextmanager
def worker_on(queues: Sequence[str]) -> Iterator[None]:
    task_postrun.connect(close_worker_connections, weak=False)
    try:
        with start_worker(
            celery_app,
            pool="solo",
            perform_ping_check=False,
            queues=list(queues),
            shutdown_timeout=10,
            loglevel="WARNING",
            WorkController=BoundedWorkController,
        ):
            yield
    finally:
        task_postrun.disconnect(close_worker_connections)
