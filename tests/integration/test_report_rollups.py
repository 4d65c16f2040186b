"""A real Celery worker fills a zone's dashboard rollups after the first view in that zone: the view counts the raw
rows and asks once; the worker (the `reports` queue) fills the zone; the next view sums the rollups, with the same
figures."""

from collections.abc import Iterator

import pytest
import time_machine
from django.core.cache import cache

from security.models import User
from sla import rollups
from tests.integration.celery_worker import broker_on, worker_on
from tests.integration.processes import poll
from tests.sla.dashboard_data import NOW, PERIOD, build_history
from tests.web.conftest import signed_in

pytestmark = pytest.mark.worker

BROKER_DB = 3
QUEUES = ("reports",)
FILL_TIMEOUT_SECONDS = 20
ZONE = "Asia/Kolkata"


@pytest.fixture
def worker(settings) -> Iterator[None]:  # type: ignore[no-untyped-def]
    with broker_on(settings.REDIS_URL, BROKER_DB, QUEUES), worker_on(QUEUES):
        yield


@pytest.mark.django_db(transaction=True)
def test_the_first_view_in_a_zone_has_a_worker_fill_it_and_the_next_view_sums_the_rollups(  # type: ignore[no-untyped-def]
    committed_db, desk, worker
) -> None:
    build_history(desk)
    User.objects.filter(pk=desk.manager.pk).update(time_zone=ZONE)
    desk.manager.refresh_from_db()
    cache.delete(f"rollups:fill-requested:{ZONE}")
    client = signed_in(desk.manager)

    with time_machine.travel(NOW, tick=False):
        first = client.get("/dashboards/sla/", PERIOD)
    assert first.status_code == 200
    assert not first.context["q"].rollups

    assert poll(lambda: rollups.zone_state(ZONE) is True, timeout=FILL_TIMEOUT_SECONDS)
    with time_machine.travel(NOW, tick=False):
        second = client.get("/dashboards/sla/", PERIOD)
    assert second.context["q"].rollups
    assert second.context["tiles"] == first.context["tiles"]
    assert second.context["charts"] == first.context["charts"]
    assert first.context["tiles"]["breaches"] == 2
