"""Shared fixtures. Every test talks to the real Postgres (pytest-django's test database) and, where it needs a
cache or broker, the real Redis."""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.core.cache import cache
from django.db import connection

from security.models import Membership, Team, User
from tests.factories import CategoryFactory, MembershipFactory, TeamFactory, UserFactory
from tickets import services as ticket_services
from tickets.models import Category, Ticket


@pytest.fixture(autouse=True)
def _clear_cache() -> Iterator[None]:
    # The cache (login throttling counters …) lives in its own Redis database; start and end every test empty.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "media")},
        },
    }


@pytest.fixture(autouse=True)
def fast_passwords(settings: Any) -> None:
    """Argon2 costs ~0.1 s a hash and the desk fixture makes ten users: tests that are not about passwords use a
    cheap hasher (tests/security/test_directory.py checks the real setting)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _generous_api_rate_limits(settings: Any) -> None:
    """Tests that drive the API hard (contract runs, role matrices) are not about rate limits: raise them far out of
    reach. tests/security/test_rate_limits.py sets its own small limits."""
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"token": "100000/minute", "user": "100000/minute", "anon": "100000/minute"},
    }


@pytest.fixture
def committed_db(transactional_db: None) -> Iterator[None]:
    """A transactional test database whose teardown can empty the append-only audit log.

    pytest-django empties the tables after a transactional test with TRUNCATE, which the audit log's trigger refuses
    (migration security 0002). Replica mode skips ordinary triggers for this session only; the test case closes the
    connection right after the flush, so the setting never outlives the teardown.
    """
    yield
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")


@dataclass
class Desk:
    """A small service desk: three teams, people in every role, and one category per team."""

    desktop: Team
    network: Team
    security: Team
    requester: User
    other_requester: User
    agent: User
    agent2: User
    lead: User
    network_agent: User
    security_agent: User
    security_officer: User
    manager: User
    admin: User
    laptop: Category
    vpn: Category
    phishing: Category

    def ticket(self, *, requester: User | None = None, category: Category | None = None, **kwargs) -> Ticket:  # type: ignore[no-untyped-def]
        """Raise a ticket through the service, as `requester` (default: the desk's requester)."""
        actor = requester or self.requester
        return ticket_services.ticket_create(
            actor=actor, title=kwargs.pop("title", "Laptop does not boot"), category=category or self.laptop, **kwargs
        )


@pytest.fixture
def desk(db) -> Desk:  # type: ignore[no-untyped-def]
    desktop = TeamFactory(name="Desktop support", slug="desktop")
    network = TeamFactory(name="Network", slug="network")
    security = TeamFactory(name="Security", slug="security", is_security=True)
    agent = MembershipFactory(team=desktop, user__full_name="Ada Agent", user__email="ada@example.org").user
    agent2 = MembershipFactory(team=desktop, user__full_name="Bo Agent", user__email="bo@example.org").user
    lead = MembershipFactory(
        team=desktop, role=Membership.Role.LEAD, user__full_name="Lee Lead", user__email="lee@example.org"
    ).user
    network_agent = MembershipFactory(team=network, user__full_name="Ned Network", user__email="ned@example.org").user
    security_agent = MembershipFactory(
        team=security, user__full_name="Sam Security", user__email="sam@example.org"
    ).user
    return Desk(
        desktop=desktop,
        network=network,
        security=security,
        requester=UserFactory(full_name="Rita Requester", email="rita@example.org"),
        other_requester=UserFactory(full_name="Otto Other", email="otto@example.org"),
        agent=agent,
        agent2=agent2,
        lead=lead,
        network_agent=network_agent,
        security_agent=security_agent,
        security_officer=UserFactory(full_name="Sol Officer", email="sol@example.org", is_security_officer=True),
        manager=UserFactory(full_name="Mia Manager", email="mia@example.org", is_manager=True),
        admin=UserFactory(full_name="Adam Admin", email="adam@example.org", is_admin=True),
        laptop=CategoryFactory(name="Laptop", slug="laptop", default_team=desktop),
        vpn=CategoryFactory(name="VPN", slug="vpn", kind=Category.Kind.SYSADMIN, default_team=network),
        phishing=CategoryFactory(
            name="Phishing", slug="phishing", kind=Category.Kind.SECURITY, default_team=security, is_confidential=True
        ),
    )
