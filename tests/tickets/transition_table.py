"""The transition table as docs/tickets.md states it, written out independently of `tickets.state.TRANSITIONS` so a
change to either one shows up as a failing test."""

from tickets.state import Actor, TicketState

S = TicketState
AGENT_ONLY = frozenset({Actor.AGENT, Actor.SYSTEM})
ANYONE = frozenset({Actor.AGENT, Actor.REQUESTER, Actor.SYSTEM})

# (from, to) -> (who may take it, whether it needs a reason)
EXPECTED: dict[tuple[str, str], tuple[frozenset[Actor], bool]] = {
    (S.NEW, S.ASSIGNED): (AGENT_ONLY, False),
    (S.NEW, S.IN_PROGRESS): (AGENT_ONLY, False),
    (S.NEW, S.PENDING): (AGENT_ONLY, False),
    (S.NEW, S.RESOLVED): (AGENT_ONLY, False),
    (S.NEW, S.CANCELLED): (ANYONE, True),
    (S.ASSIGNED, S.NEW): (AGENT_ONLY, False),
    (S.ASSIGNED, S.IN_PROGRESS): (AGENT_ONLY, False),
    (S.ASSIGNED, S.PENDING): (AGENT_ONLY, False),
    (S.ASSIGNED, S.RESOLVED): (AGENT_ONLY, False),
    (S.ASSIGNED, S.CANCELLED): (ANYONE, True),
    (S.IN_PROGRESS, S.PENDING): (AGENT_ONLY, False),
    (S.IN_PROGRESS, S.RESOLVED): (AGENT_ONLY, False),
    (S.IN_PROGRESS, S.CANCELLED): (ANYONE, True),
    (S.PENDING, S.IN_PROGRESS): (AGENT_ONLY, False),
    (S.PENDING, S.RESOLVED): (AGENT_ONLY, False),
    (S.PENDING, S.CANCELLED): (ANYONE, True),
    (S.RESOLVED, S.CLOSED): (ANYONE, False),
    (S.RESOLVED, S.IN_PROGRESS): (ANYONE, True),
}

ALL_PAIRS = [(source, target) for source in S.values for target in S.values]
