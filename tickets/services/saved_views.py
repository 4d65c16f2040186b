"""Saved desk views: a named queue, filters and sort, personal or shared with one of the owner's teams."""

from collections.abc import Mapping
from typing import Any

from django.db import IntegrityError, transaction

from itsm.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from security import permissions
from security.audit import audit_record
from security.models import Team, User
from tickets import queues
from tickets.models import SavedView

NAME_MAX_CHARS = 80


def _audit_fields(saved_view: SavedView) -> dict[str, Any]:
    return {
        "owner": saved_view.owner_id,
        "team": saved_view.team_id,
        "name": saved_view.name,
        "query": saved_view.query,
    }


@transaction.atomic
def saved_view_create(*, actor: User, name: str, query: Mapping[str, Any], team: Team | None = None) -> SavedView:
    """Save `query` (the list's parameters) under `name` for `actor`, or shared with `team`.

    The query is parsed again here and only its valid queue, filter and sort parameters are stored (no page
    position), so a saved view never holds anything the list would refuse. Names are unique per owner: a second
    view with the same name is a `Conflict` (the database constraint settles a race between two requests).
    """
    if not permissions.can_use_desk(actor):
        raise PermissionDenied("Only desk users can save views.")
    name = " ".join((name or "").split())
    if not name:
        raise ValidationFailed("A name is required.", fields={"name": ["Give the view a name."]})
    if len(name) > NAME_MAX_CHARS:
        raise ValidationFailed("The name is too long.", fields={"name": [f"Use at most {NAME_MAX_CHARS} characters."]})
    if team is not None and team.pk not in permissions.access_for(actor).team_ids:
        raise PermissionDenied(
            "You can only share a view with a team you belong to.", fields={"team": ["Choose one of your teams."]}
        )
    parsed = queues.parse_queue(queues.params_from_saved(query))
    if parsed.errors:
        raise ValidationFailed(
            "Fix the filters before saving the view.",
            fields={field: list(messages) for field, messages in parsed.errors.items()},
        )
    if SavedView.objects.filter(owner=actor, name=name).exists():
        raise Conflict("You already have a view with this name.", fields={"name": ["Choose another name."]})
    try:
        with transaction.atomic():
            saved_view = SavedView.objects.create(owner=actor, team=team, name=name, query=parsed.query.filter_params())
    except IntegrityError as exc:
        raise Conflict("You already have a view with this name.", fields={"name": ["Choose another name."]}) from exc
    audit_record(actor=actor, action="saved_view.create", obj=saved_view, after=_audit_fields(saved_view))
    return saved_view


@transaction.atomic
def saved_view_delete(*, actor: User, saved_view: SavedView | int) -> None:
    """Delete one of `actor`'s own views. A view shared with the actor's team by someone else is refused
    (`PermissionDenied`); one the actor cannot see at all is `NotFound`. Deleting twice is a `NotFound`."""
    pk = saved_view.pk if isinstance(saved_view, SavedView) else saved_view
    try:
        locked = SavedView.objects.select_for_update().get(pk=pk)
    except (SavedView.DoesNotExist, ValueError, TypeError) as exc:
        raise NotFound("No such saved view.") from exc
    if locked.owner_id != actor.pk:
        if locked.team_id is not None and locked.team_id in permissions.access_for(actor).team_ids:
            raise PermissionDenied("Only the person who saved this view can delete it.")
        raise NotFound("No such saved view.")
    before, object_id, object_repr = _audit_fields(locked), str(locked.pk), str(locked)
    locked.delete()
    audit_record(
        actor=actor,
        action="saved_view.delete",
        object_type=SavedView._meta.label_lower,
        object_id=object_id,
        object_repr=object_repr,
        before=before,
    )
