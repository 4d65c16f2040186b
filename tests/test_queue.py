from django.db import transaction

from itsm import queue
from tickets.tasks import notify_assignee_task


def test_work_is_sent_after_commit(db, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks, transaction.atomic():
        queue.enqueue_on_commit(notify_assignee_task, 1, 2)

    assert len(callbacks) == 1


def test_suppressed_block_sends_nothing(db, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks, queue.suppressed(), transaction.atomic():
        queue.enqueue_on_commit(notify_assignee_task, 1, 2)

    assert callbacks == []
    with django_capture_on_commit_callbacks() as callbacks, transaction.atomic():
        queue.enqueue_on_commit(notify_assignee_task, 1, 2)
    assert len(callbacks) == 1


def test_broker_outage_is_logged_not_raised(settings, caplog):
    from itsm.celery import app

    original = app.conf.broker_url
    app.conf.broker_url = "redis://127.0.0.1:1/0"
    try:
        with app.connection_for_write() as connection:
            sent = queue.send_now(notify_assignee_task, 1, 2, connection=connection)
    finally:
        app.conf.broker_url = original

    assert sent is False
    assert "queue.send_failed" in caplog.text
