"""The pure history replay behind retroactive starts (sla/replay.py): no database."""

from datetime import UTC, datetime, timedelta

from sla.replay import replay, state_at
from sla.state import PAUSED, RUNNING, Segment

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


HISTORY = [(at(0), "new"), (at(1), "pending"), (at(2), "in_progress"), (at(3), "resolved"), (at(5), "in_progress")]


def test_state_at_reads_the_state_entered_last() -> None:
    assert [state_at(HISTORY, at(h)) for h in (0, 0.5, 1, 2.5, 3, 4, 9)] == [
        "new", "new", "pending", "in_progress", "resolved", "resolved", "in_progress",
    ]  # fmt: skip


def test_resolution_continues_with_the_resolved_interval_paused() -> None:
    result = replay(start=at(0), history=HISTORY, metric="resolution", pause_states=["pending"])
    assert result.segments == (
        Segment(RUNNING, at(0), at(1)),
        Segment(PAUSED, at(1), at(2)),
        Segment(RUNNING, at(2), at(3)),
        Segment(PAUSED, at(3), at(5)),
        Segment(RUNNING, at(5)),
    )
    assert result.events == (
        ("paused", at(1), "pending"),
        ("resumed", at(2), "in_progress"),
        ("reopened", at(5), "in_progress"),
    )
    assert (result.start, result.stopped_at) == (at(0), None)


def test_resolution_with_restart_starts_again_at_the_reopen() -> None:
    result = replay(start=at(0), history=HISTORY, metric="resolution", pause_states=["pending"], on_reopen="restart")
    assert (result.start, result.segments, result.events) == (at(5), (Segment(RUNNING, at(5)),), ())


def test_still_resolved_stops_at_the_resolution() -> None:
    result = replay(start=at(0), history=HISTORY[:4], metric="resolution", pause_states=["pending"])
    assert result.segments[-1] == Segment(RUNNING, at(2), at(3))
    assert (result.stopped_at, result.stop_reason) == (at(3), "resolved")


def test_first_response_stops_at_the_first_reply_or_the_resolution() -> None:
    replied = replay(
        start=at(0), history=HISTORY, metric="first_response", pause_states=["pending"], first_reply_at=at(1.5)
    )
    assert replied.segments == (Segment(RUNNING, at(0), at(1)), Segment(PAUSED, at(1), at(1.5)))
    assert (replied.stopped_at, replied.stop_reason) == (at(1.5), "first_reply")
    unanswered = replay(start=at(0), history=HISTORY, metric="first_response", pause_states=["pending"])
    assert (unanswered.stopped_at, unanswered.stop_reason) == (at(3), "resolved")


def test_custom_metric_stops_for_good_at_a_stop_state() -> None:
    result = replay(start=at(1), history=HISTORY, metric="custom", pause_states=[], stop_states=["in_progress"])
    assert (result.segments, result.stopped_at, result.stop_reason) == (
        (Segment(RUNNING, at(1), at(2)),),
        at(2),
        "stop_state",
    )
