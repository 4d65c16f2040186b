import hashlib
import threading
import time
from datetime import UTC, datetime

import pytest
from django.core.management import call_command, execute_from_command_line
from django.core.management.base import CommandError
from django.db import ProgrammingError, connection, connections, transaction

from itsm.errors import Conflict, NotFound, PermissionDenied
from security import services as directory
from security.audit import GENESIS_HASH, ChainBreak, audit_record, audit_verify, canonical_payload, row_hash
from security.models import AuditLog, Membership
from tickets import services as tickets

NOW = datetime(2025, 3, 3, 9, 0, 0, tzinfo=UTC)


def _head() -> int:
    return AuditLog.objects.order_by("-seq").values_list("seq", flat=True).first() or 0


def _rows_since(seq: int) -> list[tuple]:
    return list(
        AuditLog.objects.filter(seq__gt=seq)
        .order_by("seq")
        .values_list("action", "actor_id", "object_type", "object_id", "before", "after")
    )


def _append(count: int) -> list[AuditLog]:
    return [
        audit_record(actor=None, action="test.event", object_type="thing", object_id=str(n), after={"n": n})
        for n in range(1, count + 1)
    ]


def _tamper(sql: str, params: list) -> None:  # type: ignore[type-arg]
    """Change the log behind the trigger's back, as someone with table-owner rights could."""
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE security_auditlog DISABLE TRIGGER USER")
        cursor.execute(sql, params)
        cursor.execute("ALTER TABLE security_auditlog ENABLE TRIGGER USER")


# --- what each service writes ----------------------------------------------------------------------------------------


def test_user_create_and_update_are_audited_with_before_and_after(desk):
    # given
    head = _head()

    # when
    user = directory.user_create(actor=desk.admin, email=" New.Person@Example.ORG ", full_name="New Person")
    directory.user_update(actor=desk.admin, user=user, full_name="New P. Erson", is_manager=True)
    directory.user_update(actor=desk.admin, user=user, full_name="New P. Erson")  # no change: no row

    # then
    created = {
        "email": "new.person@example.org",
        "full_name": "New Person",
        "is_active": True,
        "is_manager": False,
        "is_security_officer": False,
        "is_admin": False,
        "is_service_account": False,
        "organisation": "",
    }
    updated = {**created, "full_name": "New P. Erson", "is_manager": True}
    assert _rows_since(head) == [
        ("user.create", desk.admin.pk, "security.user", str(user.pk), None, created),
        ("user.update", desk.admin.pk, "security.user", str(user.pk), created, updated),
    ]
    assert AuditLog.objects.get(seq=head + 1).actor_label == "Adam Admin <adam@example.org>"


def test_team_create_is_audited(desk):
    head = _head()

    team = directory.team_create(actor=desk.admin, name="Field service", email="field@example.org")

    assert _rows_since(head) == [
        (
            "team.create",
            desk.admin.pk,
            "security.team",
            str(team.pk),
            None,
            {
                "name": "Field service",
                "slug": "field-service",
                "email": "field@example.org",
                "is_security": False,
                "auto_assign": False,
            },
        )
    ]


def test_membership_changes_are_audited(desk):
    # given
    head = _head()
    user, team = desk.other_requester, desk.network

    # when
    membership = directory.membership_set(actor=desk.admin, user=user, team=team)
    directory.membership_set(actor=desk.admin, user=user, team=team)  # same role: no row
    directory.membership_set(actor=desk.admin, user=user, team=team, role=Membership.Role.LEAD)
    directory.membership_remove(actor=desk.admin, user=user, team=team)

    # then
    agent = {"user": user.pk, "team": team.pk, "role": "agent"}
    lead = {**agent, "role": "lead"}
    key = ("security.membership", str(membership.pk))
    assert _rows_since(head) == [
        ("membership.create", desk.admin.pk, *key, None, agent),
        ("membership.update", desk.admin.pk, *key, agent, lead),
        ("membership.delete", desk.admin.pk, *key, lead, None),
    ]


def test_the_system_actor_is_recorded_as_system(db):
    head = _head()

    directory.team_create(actor=None, name="Night shift")

    row = AuditLog.objects.get(seq=head + 1)
    assert (row.actor_id, row.actor_label, row.action) == (None, "system", "team.create")


def test_ticket_services_write_one_row_per_change(desk, time_machine):
    # given
    time_machine.move_to(NOW, tick=False)
    head = _head()

    # when
    ticket = desk.ticket()
    tickets.ticket_assign(actor=desk.agent, ticket=ticket, assignee=desk.agent2)
    tickets.ticket_transition(actor=desk.agent2, ticket=ticket, to_state="in_progress")
    tickets.ticket_transition(actor=desk.agent2, ticket=ticket, to_state="in_progress")  # no-op: no row

    # then
    rows = list(AuditLog.objects.filter(seq__gt=head).order_by("seq"))
    assert [(r.action, r.actor_id, r.object_type, r.object_id, r.at) for r in rows] == [
        ("ticket.create", desk.requester.pk, "tickets.ticket", str(ticket.pk), NOW),
        ("ticket.assign", desk.agent.pk, "tickets.ticket", str(ticket.pk), NOW),
        ("ticket.transition", desk.agent2.pk, "tickets.ticket", str(ticket.pk), NOW),
    ]
    create, assign, transition = rows
    assert create.before is None
    assert (create.after["number"], create.after["state"], create.after["assignee"]) == (ticket.number, "new", None)
    assert (assign.before["state"], assign.before["assignee"]) == ("new", None)
    assert (assign.after["state"], assign.after["assignee"]) == ("assigned", desk.agent2.pk)
    assert (transition.before["state"], transition.after["state"]) == ("assigned", "in_progress")
    assert create.object_repr == f"{ticket.number} Laptop does not boot"


def test_refused_changes_write_no_audit_rows(desk):
    ticket = desk.ticket()
    head = _head()

    with pytest.raises(PermissionDenied):
        directory.team_create(actor=desk.agent, name="Shadow team")
    with pytest.raises(Conflict):
        directory.user_create(actor=desk.admin, email="ADA@example.org", full_name="Ada Again")
    with pytest.raises(PermissionDenied):
        directory.membership_set(actor=desk.agent, user=desk.requester, team=desk.desktop)
    with pytest.raises(NotFound):
        tickets.ticket_transition(actor=desk.other_requester, ticket=ticket, to_state="cancelled", reason="x")

    assert _head() == head


# --- the chain -------------------------------------------------------------------------------------------------------


def test_rows_form_a_hash_chain_from_genesis(db):
    # given
    assert AuditLog.objects.count() == 0

    # when
    rows = _append(3)

    # then
    assert [row.seq for row in rows] == [1, 2, 3]
    assert [row.prev_hash for row in rows] == [GENESIS_HASH, rows[0].hash, rows[1].hash]
    stored = AuditLog.objects.get(seq=2)
    payload = canonical_payload(
        seq=2,
        at=stored.at,
        actor_id=None,
        action="test.event",
        object_type="thing",
        object_id="2",
        before=None,
        after={"n": 2},
        prev_hash=rows[0].hash,
    )
    assert stored.hash == hashlib.sha256(rows[0].hash.encode() + payload).hexdigest() == row_hash(stored)


def test_audit_verify_yields_running_counts_for_an_intact_chain(db):
    _append(5)

    assert list(audit_verify(batch_size=2)) == [2, 4, 5]
    assert list(audit_verify()) == [5]


def test_audit_verify_of_an_empty_log_yields_nothing(db):
    assert list(audit_verify()) == []


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE security_auditlog SET action = 'ticket.view' WHERE seq = 2",
        "UPDATE security_auditlog SET after = '{\"n\": 99}'::jsonb",
        "DELETE FROM security_auditlog WHERE seq = 3",
        "TRUNCATE security_auditlog",
    ],
)
def test_the_database_refuses_to_change_or_remove_audit_rows(db, sql):
    # given
    _append(3)
    before = list(AuditLog.objects.order_by("seq").values())

    # when
    with (
        pytest.raises(ProgrammingError, match="the audit log is append-only") as refused,
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql)

    # then
    assert refused.value.__cause__.pgcode == "42501"  # insufficient_privilege, raised by the trigger
    assert list(AuditLog.objects.order_by("seq").values()) == before


def test_the_orm_cannot_change_or_remove_audit_rows_either(db):
    [row] = _append(1)
    row.action = "ticket.view"

    with pytest.raises(ProgrammingError), transaction.atomic():
        row.save()
    with pytest.raises(ProgrammingError), transaction.atomic():
        AuditLog.objects.filter(pk=row.pk).update(action="ticket.view")
    with pytest.raises(ProgrammingError), transaction.atomic():
        AuditLog.objects.filter(pk=row.pk).delete()

    assert AuditLog.objects.get(pk=row.pk).action == "test.event"


# --- manage.py audit_verify ------------------------------------------------------------------------------------------


def test_audit_verify_command_reports_an_intact_chain_with_progress(db, capsys):
    _append(3)

    call_command("audit_verify", "--batch-size", "2")

    out, err = capsys.readouterr()
    assert out == "audit chain intact: 3 rows\n"
    assert err == "checked 2 of 3 rows\nchecked 3 of 3 rows\n"


def test_audit_verify_command_on_an_empty_log(db, capsys):
    call_command("audit_verify", "--no-progress")

    assert capsys.readouterr() == ("audit chain intact: 0 rows\n", "")


def test_audit_verify_command_names_an_altered_row(db):
    # given
    _append(3)
    _tamper("UPDATE security_auditlog SET after = %s::jsonb WHERE seq = 2", ['{"n": 20}'])

    # when
    with pytest.raises(CommandError) as broken:
        call_command("audit_verify", "--no-progress")

    # then
    assert str(broken.value) == "audit chain broken at row 2: row content does not match its hash (the row was altered)"


def test_audit_verify_command_catches_a_rehashed_row_at_the_next_link(db):
    # given: row 2 altered and its own hash recomputed, so only the link from row 3 shows it
    _append(3)
    forged = AuditLog.objects.get(seq=2)
    forged.after = {"n": 20}
    _tamper("UPDATE security_auditlog SET after = %s::jsonb, hash = %s WHERE seq = 2", ['{"n": 20}', row_hash(forged)])

    # when
    with pytest.raises(CommandError) as broken:
        call_command("audit_verify", "--no-progress")

    # then
    assert str(broken.value) == "audit chain broken at row 3: prev_hash does not match the hash of the row before it"


def test_audit_verify_command_reports_a_deleted_middle_row_as_missing(db):
    _append(4)
    _tamper("DELETE FROM security_auditlog WHERE seq = %s", [2])

    with pytest.raises(CommandError) as broken:
        call_command("audit_verify", "--no-progress")

    assert str(broken.value) == "audit chain broken at row 2: row 2 is missing (next row is 3)"


def test_audit_verify_exits_1_from_the_command_line_on_a_broken_chain(db, capsys):
    _append(2)
    _tamper("DELETE FROM security_auditlog WHERE seq = %s", [1])

    with pytest.raises(SystemExit) as exited:
        execute_from_command_line(["manage.py", "audit_verify", "--no-progress"])

    assert exited.value.code == 1
    assert capsys.readouterr().err == "CommandError: audit chain broken at row 1: row 1 is missing (next row is 2)\n"


def test_audit_verify_exits_0_from_the_command_line_on_an_intact_chain(db, capsys):
    _append(2)

    execute_from_command_line(["manage.py", "audit_verify", "--no-progress"])

    assert capsys.readouterr().out == "audit chain intact: 2 rows\n"


def test_audit_verify_stops_at_the_first_break(db):
    _append(4)
    _tamper("UPDATE security_auditlog SET action = %s WHERE seq IN (2, 3)", ["ticket.view"])

    results = list(audit_verify(batch_size=10))

    assert results == [ChainBreak(2, "row content does not match its hash (the row was altered)")]


# --- concurrency -----------------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_extend_one_chain_without_gaps_or_forks(committed_db):
    # given: two writers, each on its own connection, released at the same instant
    start = _head()
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def writer(name: str) -> None:
        try:
            barrier.wait(timeout=10)
            for n in range(25):
                with transaction.atomic():
                    audit_record(actor=None, action="test.concurrent", object_type="writer", object_id=f"{name}-{n}")
                    # Hold the chain a moment, as a service does while it finishes its own writes: without the chain
                    # lock the other writer would read the same head now and collide on seq.
                    time.sleep(0.002)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer, args=(name,), daemon=True) for name in ("a", "b")]

    # when
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    # then
    assert [thread.is_alive() for thread in threads] == [False, False]
    assert errors == []
    rows = list(AuditLog.objects.filter(seq__gt=start).order_by("seq").values_list("seq", "object_id"))
    assert [seq for seq, _ in rows] == list(range(start + 1, start + 51))
    assert sorted(object_id for _, object_id in rows) == sorted(f"{w}-{n}" for w in "ab" for n in range(25))
    assert [r for r in audit_verify() if isinstance(r, ChainBreak)] == []
    assert AuditLog.objects.values("prev_hash").distinct().count() == AuditLog.objects.count()
