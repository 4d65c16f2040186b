"""Saved desk views: the services' rules (who may save, share and delete) and the selector's visibility."""

import pytest

from itsm.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from security.models import AuditLog
from tickets import selectors, services
from tickets.models import SavedView


def names(user) -> list[str]:  # type: ignore[no-untyped-def]
    return [view.name for view in selectors.saved_view_list(user=user)]


def test_create_personal_view_stores_the_cleaned_query_and_audits(desk):
    view = services.saved_view_create(
        actor=desk.agent,
        name="  My   open P1s ",
        query={"queue": "mine", "priority": ["1"], "after": "cursor", "size": "5", "evil": "x", "sort": "-updated"},
    )

    assert (view.owner, view.team, view.name) == (desk.agent, None, "My open P1s")
    assert view.query == {"queue": "mine", "priority": ["1"]}
    audit = AuditLog.objects.get(action="saved_view.create")
    assert audit.after == {"owner": desk.agent.pk, "team": None, "name": "My open P1s", "query": view.query}


def test_share_with_one_of_the_actors_teams(desk):
    view = services.saved_view_create(actor=desk.agent, name="Team P1", query={"queue": "team"}, team=desk.desktop)

    assert view.team == desk.desktop
    assert names(desk.agent2) == ["Team P1"]
    assert names(desk.network_agent) == []


def test_sharing_with_a_team_the_actor_is_not_in_is_refused(desk):
    with pytest.raises(PermissionDenied) as refused:
        services.saved_view_create(actor=desk.agent, name="Sneaky", query={}, team=desk.network)

    assert refused.value.fields == {"team": ["Choose one of your teams."]}
    assert not SavedView.objects.exists()


@pytest.mark.parametrize("who", ["requester", "admin"])
def test_people_who_do_not_use_the_desk_cannot_save_views(desk, who):
    with pytest.raises(PermissionDenied):
        services.saved_view_create(actor=getattr(desk, who), name="Mine", query={})

    assert not SavedView.objects.exists()
    assert not AuditLog.objects.filter(action="saved_view.create").exists()


def test_managers_use_the_desk_and_may_keep_personal_views(desk):
    view = services.saved_view_create(actor=desk.manager, name="Everything open", query={"queue": "all"})

    assert names(desk.manager) == [view.name]


@pytest.mark.parametrize(("name", "message"), [("", "Give the view a name."), ("x" * 81, "Use at most 80 characters.")])
def test_name_is_required_and_bounded(desk, name, message):
    with pytest.raises(ValidationFailed) as refused:
        services.saved_view_create(actor=desk.agent, name=name, query={})

    assert refused.value.fields == {"name": [message]}


def test_names_are_unique_per_owner(desk):
    services.saved_view_create(actor=desk.agent, name="Mine", query={"queue": "mine"})

    with pytest.raises(Conflict) as refused:
        services.saved_view_create(actor=desk.agent, name="Mine", query={"queue": "all"})
    other_owner = services.saved_view_create(actor=desk.agent2, name="Mine", query={"queue": "mine"})

    assert refused.value.code == "conflict"
    assert refused.value.fields == {"name": ["Choose another name."]}
    assert SavedView.objects.filter(name="Mine").count() == 2
    assert other_owner.owner == desk.agent2


def test_invalid_filters_are_refused_field_by_field(desk):
    with pytest.raises(ValidationFailed) as refused:
        services.saved_view_create(actor=desk.agent, name="Bad", query={"priority": "9", "sort": "password"})

    assert refused.value.fields == {
        "priority": ["Choose a priority from P1 to P4."],
        "sort": ["Choose a sort from the list."],
    }
    assert not SavedView.objects.exists()


def test_owner_deletes_a_view_and_it_is_audited(desk):
    view = services.saved_view_create(actor=desk.agent, name="Gone soon", query={}, team=desk.desktop)

    services.saved_view_delete(actor=desk.agent, saved_view=view)

    assert not SavedView.objects.exists()
    audit = AuditLog.objects.get(action="saved_view.delete")
    assert (audit.object_type, audit.object_id) == ("tickets.savedview", str(view.pk))
    assert audit.before is not None
    assert audit.before["name"] == "Gone soon"


def test_a_team_mate_may_not_delete_a_shared_view(desk):
    view = services.saved_view_create(actor=desk.agent, name="Shared", query={}, team=desk.desktop)

    with pytest.raises(PermissionDenied):
        services.saved_view_delete(actor=desk.agent2, saved_view=view)

    assert SavedView.objects.filter(pk=view.pk).exists()


@pytest.mark.parametrize("who", ["agent2", "network_agent", "manager"])
def test_someone_elses_personal_view_is_not_found(desk, who):
    view = services.saved_view_create(actor=desk.agent, name="Personal", query={})

    with pytest.raises(NotFound):
        services.saved_view_delete(actor=getattr(desk, who), saved_view=view)

    assert SavedView.objects.filter(pk=view.pk).exists()


def test_deleting_twice_is_not_found(desk):
    view = services.saved_view_create(actor=desk.agent, name="Once", query={})
    services.saved_view_delete(actor=desk.agent, saved_view=view.pk)

    with pytest.raises(NotFound):
        services.saved_view_delete(actor=desk.agent, saved_view=view.pk)


def test_list_holds_own_views_and_views_shared_with_my_teams_by_name(desk):
    services.saved_view_create(actor=desk.agent, name="b personal", query={})
    services.saved_view_create(actor=desk.lead, name="a team", query={}, team=desk.desktop)
    services.saved_view_create(actor=desk.lead, name="c lead's own", query={})
    services.saved_view_create(actor=desk.network_agent, name="network", query={}, team=desk.network)

    assert names(desk.agent) == ["a team", "b personal"]
    assert names(desk.lead) == ["a team", "c lead's own"]
    assert names(desk.network_agent) == ["network"]
    assert names(desk.requester) == []


def test_an_inactive_user_sees_no_views(desk):
    services.saved_view_create(actor=desk.agent, name="Mine", query={})
    desk.agent.is_active = False

    assert names(desk.agent) == []
    with pytest.raises(NotFound):
        selectors.saved_view_get(user=desk.agent, pk=SavedView.objects.get().pk)
