"""Positions: the list the bot offers, their ERP access, and the YAML seed."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from erp.errors import ProblemError
from erp.models import Position, Staff, User
from erp.schemas import PositionPatch

DEFAULT_SEED = Path(__file__).resolve().parents[1] / "positions.yaml"


class PositionSeed(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")
    name: str = Field(min_length=1, max_length=150)
    department: str = Field(min_length=1, max_length=150)
    erp_access: bool
    erp_role: str | None = Field(None, pattern=r"^[a-z][a-z0-9_-]{0,63}$")
    requires_approval: bool = False
    is_active: bool = True


def active_positions(session: Session) -> list[Position]:
    return list(session.scalars(select(Position).where(Position.is_active).order_by(Position.code)))


def get_position(session: Session, code: str) -> Position:
    position = session.scalar(select(Position).where(Position.code == code))
    if position is None:
        raise ProblemError(404, "not_found", "no such position")
    return position


def patch_position(session: Session, code: str, patch: PositionPatch) -> tuple[Position, int]:
    """Apply the change; a new role is granted to the position's existing accounts too (their count back)."""
    position = get_position(session, code)
    changes = patch.model_dump(exclude_unset=True)
    for field, value in changes.items():
        if value is None and field != "erp_role":
            raise ProblemError(422, "validation_error", f"{field} cannot be null")
        setattr(position, field, value)
    if position.erp_access and not position.erp_role:
        raise ProblemError(422, "validation_error", "a position with ERP access needs an erp_role")
    updated = 0
    if "erp_role" in changes and position.erp_role:
        staff_ids = select(Staff.id).where(Staff.position_id == position.id)
        result = session.execute(
            update(User).where(User.staff_id.in_(staff_ids)).values(role=position.erp_role)
        )
        updated = result.rowcount or 0
    return position, updated


def load_seed(path: Path) -> list[PositionSeed]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    items = data.get("positions") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise ValueError(f"{path}: expected a list of positions (or a mapping with 'positions')")
    try:
        return [PositionSeed.model_validate(item) for item in items]
    except ValidationError as exc:
        raise ValueError(f"{path}: {exc}") from exc


def seed(session: Session, items: list[PositionSeed]) -> tuple[int, int]:
    """Upsert by code; returns (created, updated)."""
    created = updated = 0
    for item in items:
        position = session.scalar(select(Position).where(Position.code == item.code))
        if position is None:
            session.add(Position(**item.model_dump()))
            created += 1
        else:
            for field, value in item.model_dump().items():
                setattr(position, field, value)
            updated += 1
    return created, updated
