"""The SLA engine's typed domain events (docs/sla.md "Events").

Published in-transaction through `itsm.events.publish` by the service that writes the matching `ClockEvent` (a
warning or breach fired by a timer, a breach recorded when a clock stops or is retargeted past its target, a clock
met), so a webhook outbox row commits or rolls back with the ledger row. The `name`s are the stable wire names the
webhook engine discovers `DomainEvent` subclasses by.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from tickets.events import TicketEventBase


@dataclass(frozen=True, kw_only=True)
class ClockEventBase(TicketEventBase):
    clock_id: int
    policy: str
    metric: str  # first_response | resolution | the custom metric's name
    threshold: int  # percent of the target: a warning's percentage, 100 for breached and met
    due_at: datetime | None  # the breach instant (the past for a breach; None for a clock met while paused)


@dataclass(frozen=True, kw_only=True)
class ClockWarned(ClockEventBase):
    name: ClassVar[str] = "sla.warning"


@dataclass(frozen=True, kw_only=True)
class ClockBreached(ClockEventBase):
    name: ClassVar[str] = "sla.breached"


@dataclass(frozen=True, kw_only=True)
class ClockMet(ClockEventBase):
    name: ClassVar[str] = "sla.met"
