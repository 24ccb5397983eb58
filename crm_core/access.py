"""Who may see and change what.

A manager sees and changes only rows they own (clients, leads, deals) or are assigned
(tasks); a supervisor sees their team's rows (the owner's ``team`` equals theirs) plus
their own; an admin sees everything.  Every query of the services goes through one of
the ``visible_*`` filter builders; a hidden row answers "not found", never "forbidden",
so ids do not leak.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, false, or_, select, true

from crm_core.models import Client, ContactPerson, Deal, Interaction, Lead, Task, User

__all__ = [
    "ROLES",
    "Actor",
    "can_assign_to",
    "visible_clients",
    "visible_contact_persons",
    "visible_deals",
    "visible_interactions",
    "visible_leads",
    "visible_tasks",
    "visible_users",
]

ROLES = ("admin", "supervisor", "manager")


@dataclass(frozen=True, slots=True)
class Actor:
    """The authenticated user a request acts for."""

    user_id: int
    role: str
    team: str | None = None

    @classmethod
    def of(cls, user: User) -> Actor:
        return cls(user_id=user.id, role=user.role, team=user.team)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def is_supervisor(self) -> bool:
        return self.role == "supervisor"


def _team_ids(team: str) -> Any:
    return select(User.id).where(User.team == team).scalar_subquery()


def _owned(actor: Actor, column: Any) -> ColumnElement[bool]:
    """``column`` (an owner or assignee id) is the actor's, or their team's for a supervisor."""
    if actor.is_admin:
        return true()
    if actor.role == "supervisor":
        if actor.team is None:
            return column == actor.user_id
        return or_(column == actor.user_id, column.in_(_team_ids(actor.team)))
    if actor.role == "manager":
        return column == actor.user_id
    return false()


def visible_clients(actor: Actor) -> ColumnElement[bool]:
    return _owned(actor, Client.owner_id)


def visible_leads(actor: Actor) -> ColumnElement[bool]:
    cond = _owned(actor, Lead.owner_id)
    if actor.is_supervisor and actor.team is not None:
        # Unassigned leads waiting in the supervisor's team queue.
        return or_(cond, (Lead.owner_id.is_(None)) & (Lead.queue == actor.team))
    return cond


def visible_deals(actor: Actor) -> ColumnElement[bool]:
    return _owned(actor, Deal.owner_id)


def visible_tasks(actor: Actor) -> ColumnElement[bool]:
    return _owned(actor, Task.assignee_id)


def visible_contact_persons(actor: Actor) -> ColumnElement[bool]:
    if actor.is_admin:
        return true()
    return ContactPerson.client_id.in_(select(Client.id).where(visible_clients(actor)))


def visible_interactions(actor: Actor) -> ColumnElement[bool]:
    """An interaction is visible through its client, lead or deal."""
    if actor.is_admin:
        return true()
    return or_(
        Interaction.client_id.in_(select(Client.id).where(visible_clients(actor))),
        Interaction.lead_id.in_(select(Lead.id).where(visible_leads(actor))),
        Interaction.deal_id.in_(select(Deal.id).where(visible_deals(actor))),
    )


def visible_users(actor: Actor) -> ColumnElement[bool]:
    if actor.is_admin:
        return true()
    if actor.is_supervisor and actor.team is not None:
        return or_(User.id == actor.user_id, User.team == actor.team)
    return User.id == actor.user_id


def can_assign_to(actor: Actor, user: User) -> bool:
    """May ``actor`` make ``user`` the owner/assignee of a row?

    Only active users receive work.  An admin assigns to anyone; a supervisor to
    themselves and their team; a manager only to themselves.
    """
    if not user.active:
        return False
    if actor.is_admin:
        return True
    if user.id == actor.user_id:
        return True
    return actor.is_supervisor and actor.team is not None and user.team == actor.team
