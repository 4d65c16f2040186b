"""Writes to the directory: users, teams and memberships. Every change is audited."""

from typing import Any

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils.text import slugify

from itsm.errors import Conflict, PermissionDenied, ValidationFailed
from security import permissions
from security.audit import audit_record, snapshot
from security.models import Membership, Team, User

USER_AUDIT_FIELDS = (
    "email",
    "full_name",
    "is_active",
    "is_manager",
    "is_security_officer",
    "is_admin",
    "is_service_account",
    "organisation",
)
TEAM_AUDIT_FIELDS = ("name", "slug", "email", "is_security", "auto_assign")
MEMBERSHIP_AUDIT_FIELDS = ("user", "team", "role")


def _require_admin(actor: User | None) -> None:
    # `actor=None` is the system itself (seeding, migrations, management commands run by an operator).
    if actor is not None and not permissions.can_manage_users(actor):
        raise PermissionDenied("Only administrators can change users.")


def _email_taken() -> Conflict:
    return Conflict("A user with this e-mail address already exists.", code="email_taken")


def _require_email_free(email: str, *, exclude_pk: int | None = None) -> None:
    taken = User.objects.filter(email__iexact=email)
    if exclude_pk is not None:
        taken = taken.exclude(pk=exclude_pk)
    if taken.exists():
        raise _email_taken()


@transaction.atomic
def user_create(
    *,
    actor: User | None,
    email: str,
    full_name: str,
    password: str | None = None,
    is_manager: bool = False,
    is_security_officer: bool = False,
    is_admin: bool = False,
    is_service_account: bool = False,
    organisation: str = "",
    time_zone: str = "UTC",
    validate: bool = True,
) -> User:
    _require_admin(actor)
    email = User.objects.normalize_email(email.strip()).lower()
    user = User(
        email=email,
        full_name=full_name.strip(),
        is_manager=is_manager,
        is_security_officer=is_security_officer,
        is_admin=is_admin,
        is_service_account=is_service_account,
        organisation=organisation,
        time_zone=time_zone,
    )
    # Before full_clean, whose own unique check would report a taken address as a generic validation error.
    _require_email_free(email)
    try:
        user.full_clean(exclude=["password"])
    except ValidationError as exc:
        raise ValidationFailed("The user is not valid.", fields=exc.message_dict) from exc
    if password is not None and validate:
        try:
            validate_password(password, user)
        except ValidationError as exc:  # a list of messages, not a field dict
            raise ValidationFailed("The password is not strong enough.", fields={"password": exc.messages}) from exc
    if password is None:
        user.set_unusable_password()
    else:
        user.set_password(password)
    try:
        with transaction.atomic():
            user.save(force_insert=True)
    except IntegrityError as exc:  # a concurrent create with the same address
        raise _email_taken() from exc
    audit_record(actor=actor, action="user.create", obj=user, after=snapshot(user, USER_AUDIT_FIELDS))
    return user


@transaction.atomic
def user_update(*, actor: User | None, user: User, **changes: Any) -> User:
    """Change profile fields or role flags. Flags (`is_admin` …) are access changes and need an administrator."""
    allowed = set(USER_AUDIT_FIELDS) | {"time_zone"}
    unknown = set(changes) - allowed
    if unknown:
        raise ValidationFailed(f"Unknown user fields: {', '.join(sorted(unknown))}.")
    _require_admin(actor)
    if "email" in changes:
        # Stored lower-case like user_create does: sign-in looks the address up lower-cased.
        changes["email"] = User.objects.normalize_email(str(changes["email"]).strip()).lower()
        _require_email_free(changes["email"], exclude_pk=user.pk)
    user = User.objects.select_for_update().get(pk=user.pk)
    before = snapshot(user, USER_AUDIT_FIELDS)
    changed = [name for name, value in changes.items() if getattr(user, name) != value]
    if not changed:
        return user
    for name in changed:
        setattr(user, name, changes[name])
    try:
        user.full_clean(exclude=["password"])
    except ValidationError as exc:
        raise ValidationFailed("The user is not valid.", fields=exc.message_dict) from exc
    user.save(update_fields=changed)
    audit_record(actor=actor, action="user.update", obj=user, before=before, after=snapshot(user, USER_AUDIT_FIELDS))
    return user


@transaction.atomic
def team_create(
    *,
    actor: User | None,
    name: str,
    slug: str = "",
    email: str = "",
    is_security: bool = False,
    auto_assign: bool = False,
) -> Team:
    _require_admin(actor)
    team = Team(
        name=name.strip(), slug=slug or slugify(name), email=email, is_security=is_security, auto_assign=auto_assign
    )
    try:
        team.full_clean()
    except ValidationError as exc:
        raise ValidationFailed("The team is not valid.", fields=exc.message_dict) from exc
    team.save(force_insert=True)
    audit_record(actor=actor, action="team.create", obj=team, after=snapshot(team, TEAM_AUDIT_FIELDS))
    return team


@transaction.atomic
def membership_set(*, actor: User | None, user: User, team: Team, role: str = Membership.Role.AGENT) -> Membership:
    """Add `user` to `team` with `role`, or change their role. Idempotent: the same role twice changes nothing."""
    if actor is not None and not permissions.can_manage_team(actor, team):
        raise PermissionDenied("Only administrators and the team's leads can change its members.")
    if role not in Membership.Role.values:
        raise ValidationFailed(
            "Unknown role.", fields={"role": [f"Choose one of {', '.join(Membership.Role.values)}."]}
        )
    membership = Membership.objects.select_for_update().filter(user=user, team=team).first()
    if membership is not None:
        if membership.role == role:
            return membership
        before = snapshot(membership, MEMBERSHIP_AUDIT_FIELDS)
        membership.role = role
        membership.save(update_fields=["role"])
        audit_record(
            actor=actor,
            action="membership.update",
            obj=membership,
            before=before,
            after=snapshot(membership, MEMBERSHIP_AUDIT_FIELDS),
        )
    else:
        try:
            with transaction.atomic():
                membership = Membership.objects.create(user=user, team=team, role=role)
        except IntegrityError as exc:  # a concurrent add of the same pair
            raise Conflict("This user was just added to the team by someone else.") from exc
        audit_record(
            actor=actor, action="membership.create", obj=membership, after=snapshot(membership, MEMBERSHIP_AUDIT_FIELDS)
        )
    permissions.forget_access(user)
    return membership


@transaction.atomic
def membership_remove(*, actor: User | None, user: User, team: Team) -> bool:
    if actor is not None and not permissions.can_manage_team(actor, team):
        raise PermissionDenied("Only administrators and the team's leads can change its members.")
    membership = Membership.objects.select_for_update().filter(user=user, team=team).first()
    if membership is None:
        return False
    before = snapshot(membership, MEMBERSHIP_AUDIT_FIELDS)
    audit_record(actor=actor, action="membership.delete", obj=membership, before=before)
    membership.delete()
    permissions.forget_access(user)
    return True
