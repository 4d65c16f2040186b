"""Permission predicates: the one place that says who may do what.

Every view, API endpoint and service asks these; visibility querysets (`tickets.selectors.ticket_visible_to`) encode
the same rules as SQL, and a test holds the two in agreement. Predicates take any object with the ticket attributes
they read (`requester_id`, `team_id`, `assignee_id`, `is_confidential`), so `security` never imports `tickets`.

Rules (DESIGN.md §5):
- requester: sees and comments publicly on their own tickets; may confirm, reopen (within the window) or withdraw.
- agent: sees every non-confidential ticket of their teams and tickets assigned to them; works them.
- lead: as agent, plus manages the team's memberships and may assign anyone in the team.
- manager: sees every non-confidential ticket (dashboards), does not work tickets unless also an agent.
- security officer: sees and works confidential tickets; reads the audit log.
- confidential tickets: only the requester, members of security teams and security officers, never others (not
  even admins or managers).
"""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from security.models import Membership, Team, User
from security.scopes import Scope


class TicketLike(Protocol):
    @property
    def requester_id(self) -> int | None: ...
    @property
    def team_id(self) -> int | None: ...
    @property
    def assignee_id(self) -> int | None: ...
    @property
    def is_confidential(self) -> bool: ...


@dataclass(frozen=True)
class Access:
    """What a user's memberships grant, loaded once per user object (one query)."""

    team_ids: frozenset[int]
    lead_team_ids: frozenset[int]
    security_team_ids: frozenset[int]

    @property
    def is_agent(self) -> bool:
        return bool(self.team_ids)

    @property
    def is_security_member(self) -> bool:
        return bool(self.security_team_ids)


_CACHE_ATTR = "_itsm_access"


def access_for(user: User) -> Access:
    cached: Access | None = getattr(user, _CACHE_ATTR, None)
    if cached is not None:
        return cached
    if not user.is_authenticated or not user.is_active:
        access = Access(frozenset(), frozenset(), frozenset())
        setattr(user, _CACHE_ATTR, access)
        return access
    load_access([user])
    loaded: Access = getattr(user, _CACHE_ATTR)
    return loaded


def load_access(users: Iterable[User]) -> None:
    """Load the memberships of many users in one query (the webhook outbox checks every subscription's owner)."""
    pending = {user.pk: user for user in users if getattr(user, _CACHE_ATTR, None) is None}
    if not pending:
        return
    grants: dict[int, tuple[set[int], set[int], set[int]]] = {pk: (set(), set(), set()) for pk in pending}
    rows = Membership.objects.filter(user_id__in=list(pending)).values_list(
        "user_id", "team_id", "role", "team__is_security"
    )
    for user_id, team_id, role, is_security in rows:
        team_ids, lead_ids, security_ids = grants[user_id]
        team_ids.add(team_id)
        if role == Membership.Role.LEAD:
            lead_ids.add(team_id)
        if is_security:
            security_ids.add(team_id)
    for pk, user in pending.items():
        if not user.is_authenticated or not user.is_active:
            access = Access(frozenset(), frozenset(), frozenset())
        else:
            team_ids, lead_ids, security_ids = grants[pk]
            access = Access(frozenset(team_ids), frozenset(lead_ids), frozenset(security_ids))
        setattr(user, _CACHE_ATTR, access)


def forget_access(user: User) -> None:
    """Drop the cached memberships (after a membership change in the same request)."""
    if hasattr(user, _CACHE_ATTR):
        delattr(user, _CACHE_ATTR)


def is_agent(user: User) -> bool:
    return user.is_authenticated and access_for(user).is_agent


def can_use_desk(user: User) -> bool:
    """The agent workspace is for agents, and for managers and security officers who oversee tickets."""
    return user.is_authenticated and user.is_active and (is_agent(user) or user.is_manager or user.is_security_officer)


def can_see_confidential(user: User) -> bool:
    return (
        user.is_authenticated and user.is_active and (user.is_security_officer or access_for(user).is_security_member)
    )


def _is_requester(user: User, ticket: TicketLike) -> bool:
    return user.is_authenticated and ticket.requester_id == user.pk


def _works_ticket(user: User, ticket: TicketLike) -> bool:
    """Agent-level access: a member of the ticket's team, or its assignee (still an agent somewhere)."""
    if not user.is_authenticated or not user.is_active:
        return False
    access = access_for(user)
    if ticket.is_confidential:
        return can_see_confidential(user) and (
            user.is_security_officer or ticket.team_id in access.security_team_ids or ticket.assignee_id == user.pk
        )
    return (ticket.team_id in access.team_ids) or (access.is_agent and ticket.assignee_id == user.pk)


def can_view_ticket(user: User, ticket: TicketLike) -> bool:
    if not user.is_authenticated or not user.is_active:
        return False
    if _is_requester(user, ticket):
        return True
    if ticket.is_confidential:
        return _works_ticket(user, ticket)
    return _works_ticket(user, ticket) or user.is_manager


def can_work_ticket(user: User, ticket: TicketLike) -> bool:
    """Agent actions: state changes, internal fields, priority and category."""
    return _works_ticket(user, ticket)


def can_comment_public(user: User, ticket: TicketLike) -> bool:
    return _is_requester(user, ticket) or _works_ticket(user, ticket)


def can_comment_internal(user: User, ticket: TicketLike) -> bool:
    return _works_ticket(user, ticket)


def can_view_internal(user: User, ticket: TicketLike) -> bool:
    """Internal notes and internal fields are for the people who work the ticket (and managers on open tickets)."""
    if ticket.is_confidential:
        return _works_ticket(user, ticket)
    return _works_ticket(user, ticket) or (user.is_authenticated and user.is_manager)


def can_override_priority(user: User, ticket: TicketLike) -> bool:
    return _works_ticket(user, ticket)


def can_change_category(user: User, ticket: TicketLike) -> bool:
    return _works_ticket(user, ticket)


def can_assign(user: User, ticket: TicketLike, assignee: User | None, team_id: int | None = None) -> bool:
    """May `user` give `ticket` to `assignee` (None = unassign) in team `team_id` (default: the ticket's team)?

    Agents may take a ticket of their team themselves, or hand it to another member of the team; moving a ticket
    to another team is allowed to any agent of the current team. The assignee must belong to the target team.
    """
    if not _works_ticket(user, ticket):
        return False
    target_team = team_id if team_id is not None else ticket.team_id
    if assignee is None:
        return True
    if not assignee.is_active:
        return False
    return target_team is not None and target_team in access_for(assignee).team_ids


def can_manage_team(user: User, team: Team) -> bool:
    return user.is_authenticated and user.is_active and (user.is_admin or team.pk in access_for(user).lead_team_ids)


def can_manage_users(user: User) -> bool:
    return user.is_authenticated and user.is_active and user.is_admin


def sla_dashboard_team_scope(user: User) -> frozenset[int] | None:
    """The teams whose SLA figures `user` may see on the dashboards: None means every team (managers), a set the
    teams they lead (leads). Call `can_view_sla_dashboard` first: anyone else gets an empty set."""
    if user.is_authenticated and user.is_active and user.is_manager:
        return None
    if not user.is_authenticated or not user.is_active:
        return frozenset()
    return access_for(user).lead_team_ids


def can_view_sla_dashboard(user: User) -> bool:
    """Managers (every team) and team leads (their own teams) read the SLA dashboards."""
    return user.is_authenticated and user.is_active and (user.is_manager or bool(access_for(user).lead_team_ids))


def can_view_audit_log(user: User) -> bool:
    return user.is_authenticated and user.is_active and (user.is_admin or user.is_security_officer)


def token_grantable_scopes(user: User) -> frozenset[str]:
    """The API token scopes `user` may hold: those whose endpoints they could use in the browser (docs/api-tokens.md).

    - everyone: `tickets:read`, `tickets:write` (a requester's own tickets, as in the portal);
    - desk users (agents, leads, managers, security officers): `comments:internal`, `sla:read`, `directory:read`,
      `webhooks:manage`; admins also get `sla:read`, `directory:read` and `webhooks:manage`;
    - admins: `sla:admin` (calendars and SLA policies are admin settings).

    A scope only opens the endpoint: the predicates above and the `*_visible_to` selectors still decide every object.
    """
    if not user.is_authenticated or not user.is_active:
        return frozenset()
    granted = {Scope.TICKETS_READ, Scope.TICKETS_WRITE}
    desk = can_use_desk(user)
    if desk:
        granted.add(Scope.COMMENTS_INTERNAL)
    if desk or user.is_admin:
        granted |= {Scope.SLA_READ, Scope.DIRECTORY_READ, Scope.WEBHOOKS_MANAGE}
    if user.is_admin:
        granted.add(Scope.SLA_ADMIN)
    return frozenset(str(scope) for scope in granted)


def can_create_token_for(actor: User, owner: User) -> bool:
    """People create tokens for themselves; admins create them for service accounts (which cannot sign in)."""
    if not actor.is_authenticated or not actor.is_active or not owner.is_active:
        return False
    if owner.is_service_account:
        return actor.is_admin
    return actor.pk == owner.pk


def can_revoke_token(actor: User, owner_id: int) -> bool:
    """Owners revoke their own tokens; admins revoke anyone's."""
    return actor.is_authenticated and actor.is_active and (actor.is_admin or actor.pk == owner_id)


def can_manage_webhooks(user: User) -> bool:
    """Webhooks are for the people who run the desk: agents and leads, managers, security officers and admins.
    Requesters cannot subscribe (docs/webhooks.md); what each subscription receives is still limited to what its
    owner may see."""
    return user.is_authenticated and user.is_active and (can_use_desk(user) or user.is_admin)


def can_manage_webhook(user: User, owner_id: int) -> bool:
    """A subscription is managed by its owner; admins see, enable/disable, redeliver and delete every one."""
    return can_manage_webhooks(user) and (user.is_admin or owner_id == user.pk)


def can_edit_webhook(user: User, owner_id: int) -> bool:
    """Only the owner changes the URL, the events or the secret, and reads payloads: a subscription carries what its
    owner may see (confidential tickets for a security agent), which an admin may not, so an admin must not be able
    to point it elsewhere or read it."""
    return can_manage_webhooks(user) and owner_id == user.pk
