"""The dashboards' daily rollups (sla/rollups.py): every figure read from them equals the same figure counted from the
raw rows, in zones whose days start at odd UTC offsets, whether the rollups were kept by the triggers from the start or
filled afterwards, after tickets, ratings and outcomes change, after compaction and after a refill."""

import random
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from security.models import User
from sla import reports, rollups
from sla.models import Clock, ClockOutcome, ReportZone, SlaTarget
from tests.sla.dashboard_data import MONDAY, build_history
from tests.sla.test_reports import report_query
from tickets.models import SatisfactionRating, Ticket

pytestmark = pytest.mark.django_db

# UTC; a zone a day ahead of UTC (+14); one behind (-11); quarter- and half-hour offsets; a DST zone.
ZONES = ("UTC", "Pacific/Kiritimati", "Pacific/Pago_Pago", "Asia/Kathmandu", "America/St_Johns", "Europe/Berlin")


def figures(q: reports.ReportQuery) -> tuple[Any, ...]:
    return (
        reports.outcome_figure_sets(q, ["day", "team", "category"], group_percentiles=False),
        reports.outcome_figure_sets(q, ["week", "priority", "policy"], group_percentiles=False),
        reports.flow(q),
        reports.satisfaction(q),
    )


def views(desk) -> list[tuple[User, dict[str, str]]]:  # type: ignore[no-untyped-def]
    policy_id = Clock.objects.values_list("target__policy_id", flat=True).first()
    wide = {"range": "custom", "from": "2026-02-27", "to": "2026-03-07"}
    return [
        (desk.manager, {}),
        (desk.manager, wide),
        (desk.manager, {**wide, "team": str(desk.desktop.pk)}),
        (desk.manager, {**wide, "category": str(desk.vpn.pk)}),
        (desk.manager, {**wide, "priority": "2"}),
        (desk.manager, {**wide, "type": "request"}),
        (desk.manager, {**wide, "policy": str(policy_id)}),
        (desk.manager, {**wide, "bucket": "week"}),
        (desk.lead, wide),
    ]


def assert_rollups_match_raw_rows(desk, zones: tuple[str, ...] = ZONES) -> int:  # type: ignore[no-untyped-def]
    """Compare every view in every zone (and one by a viewer of confidential work); returns how many tickets the
    widest view counted (so a test can tell it compared something)."""
    counted = 0
    for zone in zones:
        for user, params in views(desk):
            User.objects.filter(pk=user.pk).update(time_zone=zone)
            user.refresh_from_db()
            q = report_query(user, params)
            raw = figures(q)
            assert figures(replace(q, rollups=True)) == raw, (zone, user.email, params)
            counted = max(counted, sum(raw[2].created))
        # a viewer who may see confidential tickets and categories
        User.objects.filter(pk=desk.manager.pk).update(is_security_officer=True)
        desk.manager.refresh_from_db()
        q = report_query(desk.manager, {"range": "custom", "from": "2026-02-27", "to": "2026-03-07"})
        assert q.include_confidential
        assert figures(replace(q, rollups=True)) == figures(q), (zone, "confidential")
        User.objects.filter(pk=desk.manager.pk).update(is_security_officer=False)
        desk.manager.refresh_from_db()
    return counted


def scatter(desk, count: int = 40, seed: int = 7) -> None:  # type: ignore[no-untyped-def]
    """Tickets, ratings and outcomes at random instants around the history's days, with random filter columns, written
    straight to the tables (the triggers see every write, whoever makes it)."""
    chance = random.Random(seed)
    teams = [desk.desktop, desk.network, None]
    categories = [desk.laptop, desk.vpn, desk.phishing]
    targets = list(SlaTarget.objects.all())
    for number in range(count):
        created = MONDAY + timedelta(minutes=chance.randrange(-3 * 1440, 6 * 1440))
        ticket = desk.ticket(title=f"Scattered {number}")
        resolved = created + timedelta(minutes=chance.randrange(10, 3 * 1440)) if chance.random() < 0.7 else None
        Ticket.objects.filter(pk=ticket.pk).update(
            created_at=created,
            resolved_at=resolved,
            team=chance.choice(teams),
            category=chance.choice(categories),
            priority=chance.randint(1, 4),
            type=chance.choice(["incident", "request"]),
            is_confidential=chance.random() < 0.2,
        )
        if resolved is not None and chance.random() < 0.6:
            SatisfactionRating.objects.create(ticket=ticket, rated_by=desk.requester, score=chance.randint(1, 5))
        for clock in Clock.objects.filter(ticket=ticket):
            finished = created + timedelta(minutes=chance.randrange(1, 2 * 1440))
            ClockOutcome.objects.create(
                clock=clock,
                met=chance.random() < 0.6,
                business_seconds_used=chance.randrange(60, 20_000),
                target_seconds=3600,
                team=chance.choice(teams),
                priority=chance.randint(1, 4),
                category=chance.choice(categories),
                policy=chance.choice(targets).policy,
                finished_at=finished,
                started_at=created,
                metric=clock.target.metric,
                ticket_type=chance.choice(["incident", "request"]),
            )


def change_everything(desk, seed: int = 11) -> None:  # type: ignore[no-untyped-def]
    """Move tickets between teams, categories, priorities, days and confidentiality; reopen and re-resolve; rate,
    re-rate and unrate; move, flip and delete outcomes."""
    chance = random.Random(seed)
    tickets = list(Ticket.objects.order_by("pk"))
    for ticket in chance.sample(tickets, len(tickets) // 2):
        ticket.team = chance.choice([desk.desktop, desk.network, None])
        ticket.category = chance.choice([desk.laptop, desk.vpn])
        ticket.priority = chance.randint(1, 4)
        ticket.is_confidential = not ticket.is_confidential
        ticket.created_at += timedelta(hours=chance.randrange(-30, 30))
        if ticket.resolved_at is not None:
            # reopened (resolved_at cleared; only where the state allows it) or resolved again later
            reopen = chance.random() < 0.3 and ticket.state not in ("resolved", "closed")
            ticket.resolved_at = None if reopen else ticket.resolved_at + timedelta(hours=13)
        ticket.save(update_fields=["team", "category", "priority", "is_confidential", "created_at", "resolved_at"])
    for rating in SatisfactionRating.objects.all():
        if chance.random() < 0.3:
            rating.delete()
        else:
            rating.score = chance.randint(1, 5)
            rating.save(update_fields=["score"])
    for outcome in ClockOutcome.objects.all():
        roll = chance.random()
        if roll < 0.15:
            outcome.delete()
        elif roll < 0.6:
            outcome.finished_at += timedelta(hours=chance.randrange(-20, 20))
            outcome.met = not outcome.met
            outcome.team = chance.choice([desk.desktop, desk.network, None])
            outcome.save(update_fields=["finished_at", "met", "team"])


def rollup_rows() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT (SELECT count(*) FROM sla_outcomeday) + (SELECT count(*) FROM sla_ticketday)")
        return int(cursor.fetchone()[0])


def test_rollups_kept_by_the_triggers_from_the_start_match_the_raw_rows(desk) -> None:  # type: ignore[no-untyped-def]
    ReportZone.objects.bulk_create(ReportZone(name=zone, is_ready=True) for zone in ZONES)
    build_history(desk)
    scatter(desk)
    assert assert_rollups_match_raw_rows(desk) > 20
    change_everything(desk)
    assert_rollups_match_raw_rows(desk)

    before = rollup_rows()
    assert rollups.compact() > 0
    assert rollup_rows() < before
    assert rollups.compact() == 0  # nothing left to fold
    assert_rollups_match_raw_rows(desk)


def test_filling_a_zone_counts_what_was_written_before_it_was_listed(desk) -> None:  # type: ignore[no-untyped-def]
    build_history(desk)
    scatter(desk)
    change_everything(desk)
    assert rollup_rows() == 0  # no zone listed: the triggers wrote nothing
    zones = ("Pacific/Kiritimati", "America/St_Johns")
    steps: list[tuple[str, int, int]] = []
    for zone in zones:
        assert rollups.fill_zone(zone, progress=lambda label, done, total: steps.append((label, done, total)))
    assert {label for label, _done, _total in steps} == {"tickets created", "tickets resolved", "outcomes"}
    assert all(done == total for _label, done, total in steps)  # four weeks at a time: one window each here
    assert assert_rollups_match_raw_rows(desk, zones) > 20
    filled = rollup_rows()

    assert not rollups.fill_zone(zones[0])  # ready: left alone
    assert rollups.fill_zone(zones[0], refill=True)
    assert rollup_rows() == filled  # a refill counts the same rows again, already compacted
    change_everything(desk, seed=3)  # the triggers keep both zones from here
    assert_rollups_match_raw_rows(desk, zones)


def test_filling_counts_a_few_days_at_a_time(desk, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    build_history(desk)
    scatter(desk, count=12)
    monkeypatch.setattr(rollups, "FILL_DAYS", 2)
    steps: list[tuple[str, int, int]] = []
    assert rollups.fill_zone("Asia/Kathmandu", progress=lambda label, done, total: steps.append((label, done, total)))
    created = [(done, total) for label, done, total in steps if label == "tickets created"]
    assert len(created) > 2
    assert [done for done, _total in created] == sorted(done for done, _total in created)
    assert created[-1][0] == created[-1][1]
    assert rollups.compact() == 0  # windows end at local midnight: no day was counted in two
    assert assert_rollups_match_raw_rows(desk, ("Asia/Kathmandu",)) > 10


def test_a_dropped_zone_is_counted_from_the_raw_rows_again(desk) -> None:  # type: ignore[no-untyped-def]
    build_history(desk)
    assert rollups.fill_zone("UTC")
    assert rollups.zone_state("UTC") is True
    assert rollups.drop_zone("UTC")
    assert rollups.zone_state("UTC") is None
    assert rollup_rows() == 0
    desk.ticket(title="After the drop")
    assert rollup_rows() == 0  # no listed zone, nothing written
    assert not rollups.drop_zone("UTC")


def test_an_unknown_zone_is_refused(db) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="not a known IANA time zone"):
        rollups.fill_zone("Mars/Olympus_Mons")
    assert not ReportZone.objects.exists()
    with pytest.raises(CommandError, match="not a known IANA time zone"):
        call_command("report_rollups", "--fill", "Mars/Olympus_Mons")


def test_the_command_fills_lists_compacts_and_drops(desk, capsys) -> None:  # type: ignore[no-untyped-def]
    build_history(desk)
    call_command("report_rollups", "--fill", "Europe/Berlin")
    out, err = capsys.readouterr()
    assert "Europe/Berlin: filled in" in out
    assert "Europe/Berlin: ready since" in out
    assert "tickets created: " in err
    assert "(100 %)" in err
    call_command("report_rollups", "--fill", "Europe/Berlin", "--compact")
    out, _err = capsys.readouterr()
    assert "already ready (use --refill)" in out
    assert "compacted: 0 rows folded" in out
    call_command("report_rollups", "--drop", "Europe/Berlin")
    out, _err = capsys.readouterr()
    assert out.strip() == "Europe/Berlin: dropped"


def test_a_report_uses_the_rollups_only_of_a_ready_zone_and_asks_for_a_missing_one(desk, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    build_history(desk)
    asked: list[str] = []
    monkeypatch.setattr(rollups, "request_zone", asked.append)
    User.objects.filter(pk=desk.manager.pk).update(time_zone="Asia/Kathmandu")
    desk.manager.refresh_from_db()
    q = report_query(desk.manager)
    with reports.report_transaction(q) as seen:
        assert not seen.rollups
    assert asked == ["Asia/Kathmandu"]

    ReportZone.objects.create(name="Asia/Kathmandu", is_ready=False)  # listed, being filled
    with reports.report_transaction(q) as seen:
        assert not seen.rollups
    assert asked == ["Asia/Kathmandu"]  # not asked again

    assert rollups.fill_zone("Asia/Kathmandu", refill=True)
    with reports.report_transaction(q) as seen:
        assert seen.rollups
        assert figures(seen) == figures(q)


def test_the_fill_task_skips_unknown_zones(db) -> None:  # type: ignore[no-untyped-def]
    from sla.tasks import fill_report_zone_task

    assert fill_report_zone_task.run("Not/A_Zone") is False
    assert not ReportZone.objects.exists()


def test_a_view_where_nothing_finished_has_zero_counts_and_no_percentiles(desk) -> None:  # type: ignore[no-untyped-def]
    ReportZone.objects.create(name="UTC", is_ready=True)
    build_history(desk)
    q = report_query(desk.manager, {"range": "custom", "from": "2025-01-01", "to": "2025-01-31"})
    for view in (q, replace(q, rollups=True)):
        sets = reports.outcome_figure_sets(view, ["day", "team", "category"], group_percentiles=False)
        assert sets["team"] == sets["category"] == sets["day"] == []
        totals = sets[None][0]
        assert (totals.finished, totals.met, totals.breaches) == (0, 0, 0)
        assert totals.first_response_business_p50 is None
        assert totals.resolution_wall_p90 is None


def test_a_zone_is_asked_for_once_however_many_views_come_meanwhile(db, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from django.core.cache import cache

    sent: list[tuple[str, ...]] = []
    monkeypatch.setattr(rollups, "enqueue_on_commit", lambda task, *args: sent.append((task.name, *args)))
    cache.delete("rollups:fill-requested:Asia/Kolkata")
    for _view in range(3):
        rollups.request_zone("Asia/Kolkata")
    assert sent == [("reports.fill_zone", "Asia/Kolkata")]
    cache.delete("rollups:fill-requested:Asia/Kolkata")  # the key expires: asked again
    rollups.request_zone("Asia/Kolkata")
    assert len(sent) == 2


def test_confidential_outcomes_and_tickets_count_only_for_viewers_who_may_see_them(desk) -> None:  # type: ignore[no-untyped-def]
    ReportZone.objects.create(name="UTC", is_ready=True)
    history = build_history(desk)
    hidden_outcomes = ClockOutcome.objects.filter(clock__ticket=history.tickets["T1"])
    moved = hidden_outcomes.update(category=desk.phishing)  # a confidential category
    Ticket.objects.filter(pk=history.tickets["T2"].pk).update(is_confidential=True)
    assert moved == 2
    for rollups_ready in (False, True):
        seen = {}
        for may_see in (False, True):  # a manager, then a manager who is also a security officer
            User.objects.filter(pk=desk.manager.pk).update(is_security_officer=may_see)
            desk.manager.refresh_from_db()
            q = replace(report_query(desk.manager), rollups=rollups_ready)
            totals = reports.outcome_totals(q)
            seen[may_see] = (totals.finished, sum(reports.flow(q).created), reports.satisfaction(q).resolved)
        assert seen[True] == (7, 6, 3)
        assert seen[False] == (7 - moved, 6 - 1, 3 - 1), rollups_ready


@pytest.mark.parametrize("zone", ["CET", "EET", "MET", "WET"])
def test_a_zone_postgres_reads_as_a_fixed_abbreviation_is_refused(db, zone) -> None:  # type: ignore[no-untyped-def]
    # Python's zone database gives CET summer time; Postgres reads "CET" as the abbreviation, +1 all year.
    with pytest.raises(ValueError, match="Postgres reads"):
        rollups.fill_zone(zone)
    assert not ReportZone.objects.exists()


def test_a_fixed_zone_both_read_alike_is_kept(db) -> None:  # type: ignore[no-untyped-def]
    assert rollups.fill_zone("EST")  # -5 all year for both
    assert rollups.zone_state("EST") is True
