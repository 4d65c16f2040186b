from collections import Counter
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from security.audit import ChainBreak, audit_verify
from security.models import AuditLog, Membership, Team, User
from tickets import demo
from tickets.models import Category, Comment, Ticket, TicketEvent
from tickets.state import PendingReason, TicketState

pytestmark = pytest.mark.django_db


def seed(tmp_path, *args: str) -> str:
    out = StringIO()
    call_command("seed_demo", "--no-progress", "--logins-file", str(tmp_path / "demo-logins.txt"), *args, stdout=out)
    return out.getvalue()


def fingerprint() -> list[tuple[str, str, str, str, str | None]]:
    return list(
        Ticket.objects.order_by("id").values_list(
            "title", "state", "category__slug", "requester__email", "assignee__email"
        )
    )


def test_seed_demo_builds_the_directory(tmp_path):
    # when
    seed(tmp_path, "--tickets", "12")

    # then
    teams = {team.slug: team for team in Team.objects.all()}
    assert set(teams) == {"service-desk", "desktop-support", "network", "data-centre", "security"}
    assert teams["service-desk"].name == "Service desk L1"
    assert [slug for slug, team in teams.items() if team.auto_assign] == ["service-desk"]
    assert [slug for slug, team in teams.items() if team.is_security] == ["security"]
    for team in teams.values():
        roles = Counter(Membership.objects.filter(team=team).values_list("role", flat=True))
        assert roles[Membership.Role.LEAD] == 1
        assert 2 <= roles[Membership.Role.AGENT] <= 3
    assert list(User.objects.filter(is_admin=True).values_list("email", flat=True)) == ["admin@desk.example.org"]
    assert list(User.objects.filter(is_manager=True).values_list("email", flat=True)) == ["manager@desk.example.org"]
    assert list(User.objects.filter(is_security_officer=True).values_list("email", flat=True)) == [
        "officer@desk.example.org"
    ]
    requesters = User.objects.filter(memberships__isnull=True, is_admin=False, is_manager=False)
    requesters = requesters.filter(is_security_officer=False)
    assert requesters.count() == 15
    assert set(requesters.values_list("organisation", flat=True)) == {
        "Acme Logistics",
        "Globex Finance",
        "Northwind Clinics",
    }
    admin = User.objects.get(email="admin@desk.example.org")
    assert admin.check_password(demo.DEMO_PASSWORD)


def test_seed_demo_builds_a_category_tree_of_every_kind(tmp_path):
    # when
    seed(tmp_path, "--tickets", "12")

    # then
    assert set(Category.objects.values_list("kind", flat=True)) == set(Category.Kind.values)
    for kind in Category.Kind.values:
        roots = Category.objects.filter(kind=kind, parent__isnull=True)
        assert roots.count() == 1
        assert Category.objects.filter(parent=roots.get()).count() >= 2
    assert not Category.objects.filter(default_team__isnull=True).exists()
    assert not Category.objects.filter(portal_label="").exists()
    security = Category.objects.filter(kind=Category.Kind.SECURITY)
    assert set(security.values_list("is_confidential", "default_team__slug")) == {(True, "security")}
    assert not Category.objects.exclude(kind=Category.Kind.SECURITY).filter(is_confidential=True).exists()
    assert Category.objects.get(slug="security-phishing").portal_label == "I think I got a phishing e-mail"
    assert Category.objects.get(slug="hardware-laptop").portal_label == "My laptop is broken"
    assert set(Category.objects.filter(parent__isnull=False).values_list("default_type", flat=True)) == {
        "incident",
        "request",
    }


def test_seed_demo_covers_every_state_and_pending_reason(tmp_path):
    # when
    output = seed(tmp_path, "--tickets", "40")

    # then
    assert Ticket.objects.count() == 40
    assert set(Ticket.objects.values_list("state", flat=True)) == set(TicketState.values)
    pending_reasons = Ticket.objects.filter(state=TicketState.PENDING).values_list("pending_reason", flat=True)
    assert set(pending_reasons) == set(PendingReason.values)
    assert Ticket.objects.filter(is_confidential=True, team__slug="security").exists()
    assert not Ticket.objects.filter(is_confidential=True).exclude(team__slug="security").exists()
    assert "Seeded demo data" in output
    assert "40 tickets" in output


def test_seed_demo_tells_stories_through_the_services(tmp_path):
    # when
    seed(tmp_path, "--tickets", "120")

    # then every ticket has its creation event at its creation time, and the services left their marks
    tickets = Ticket.objects.all()
    created = TicketEvent.objects.filter(kind=TicketEvent.Kind.CREATED)
    assert created.count() == tickets.count() == 120
    assert all(event.at == event.ticket.created_at for event in created.select_related("ticket"))
    kinds = set(TicketEvent.objects.values_list("kind", flat=True))
    assert {"created", "assigned", "state_changed", "commented", "note_added", "priority_changed"} <= kinds
    assert "team_changed" in kinds  # escalations from the service desk to second line
    assert Comment.objects.filter(is_internal=True).exists()
    assert Comment.objects.filter(is_internal=False, author__memberships__isnull=True).exists()  # requester replies
    overridden = Ticket.objects.filter(priority_is_overridden=True)
    assert overridden.exists()
    assert not overridden.filter(priority_override_reason="").exists()
    auto = TicketEvent.objects.filter(kind=TicketEvent.Kind.ASSIGNED, data__auto=True)
    assert set(auto.values_list("ticket__category__default_team__slug", flat=True)) == {"service-desk"}


def test_seed_demo_spreads_tickets_over_the_last_90_days_in_time_order(tmp_path):
    # given
    before = timezone.now()

    # when
    seed(tmp_path, "--tickets", "60")

    # then
    oldest = Ticket.objects.order_by("created_at").first()
    newest_change = Ticket.objects.order_by("-updated_at").first()
    assert oldest is not None
    assert newest_change is not None
    assert before - timedelta(days=91) <= oldest.created_at <= before - timedelta(days=30)
    assert newest_change.updated_at <= before
    assert not Ticket.objects.filter(resolved_at__lt=timezone.now() - timedelta(days=92)).exists()
    # the audit trail advances with the story: time never goes backwards along the chain
    instants = list(AuditLog.objects.order_by("seq").values_list("at", flat=True))
    assert instants == sorted(instants)


def test_seed_demo_is_deterministic_for_a_seed(tmp_path):
    def run(seed_value: str) -> list[tuple[str, str, str, str, str | None]]:
        with transaction.atomic():
            seed(tmp_path, "--tickets", "40", "--seed", seed_value)
            result = fingerprint()
            transaction.set_rollback(True)
        return result

    # when
    first, second, other = run("7"), run("7"), run("8")

    # then
    assert len(first) == 40
    assert first == second
    assert first != other


def test_second_run_says_already_seeded_and_creates_nothing(tmp_path):
    # given
    seed(tmp_path, "--tickets", "15")
    counts = (User.objects.count(), Ticket.objects.count(), TicketEvent.objects.count(), AuditLog.objects.count())

    # when
    output = seed(tmp_path, "--tickets", "15")

    # then
    assert "already seeded" in output
    assert (
        User.objects.count(),
        Ticket.objects.count(),
        TicketEvent.objects.count(),
        AuditLog.objects.count(),
    ) == counts


def test_audit_chain_verifies_after_seeding(tmp_path):
    # given
    seed(tmp_path, "--tickets", "30")

    # when
    results = list(audit_verify())

    # then
    assert not [result for result in results if isinstance(result, ChainBreak)]
    assert results[-1] == AuditLog.objects.count()
    assert AuditLog.objects.filter(action="ticket.create").count() == 30


def test_seed_demo_writes_the_logins_file(tmp_path):
    # when
    seed(tmp_path, "--tickets", "10")

    # then
    text = (tmp_path / "demo-logins.txt").read_text()
    assert "http://127.0.0.1:8000/" in text
    assert demo.DEMO_PASSWORD in text
    for role, email in demo.demo_logins():
        assert role in text
        assert email in text
        assert User.objects.filter(email=email, is_active=True).exists()


def test_seed_demo_adopts_an_existing_partial_directory(tmp_path):
    # given: a team and a user that the demo also defines
    call_command("seed_demo", "--tickets", "0", "--no-progress", "--logins-file", str(tmp_path / "l.txt"))
    users, teams = User.objects.count(), Team.objects.count()

    # when: the demo directory exists but no demo tickets yet
    output = seed(tmp_path, "--tickets", "10")

    # then
    assert "Seeded demo data" in output
    assert (User.objects.count(), Team.objects.count()) == (users, teams)
    assert Ticket.objects.count() == 10


def test_seed_demo_puts_tickets_under_sla_clocks(tmp_path):
    from sla.models import Clock, ClockOutcome, SlaPolicy

    # when
    seed(tmp_path, "--tickets", "60")

    # then every ticket has an SLA clock per target, and the finished ones left outcomes behind
    assert sorted(SlaPolicy.objects.values_list("name", flat=True)) == [
        "Incidents",
        "Service desk L1 OLA",
        "Service requests",
    ]
    assert set(Clock.objects.values_list("ticket_id", flat=True)) == set(Ticket.objects.values_list("id", flat=True))
    assert Clock.objects.filter(target__metric="first_response").count() >= 60
    assert ClockOutcome.objects.filter(met=True).exists()
    assert ClockOutcome.objects.filter(met=False).exists()
    assert not Clock.objects.filter(ticket__state__in=["closed", "cancelled"], state__in=["running", "paused"]).exists()
