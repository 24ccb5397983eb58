"""The deal pipeline: stages in order, with Russian and English labels."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CLOSED_STAGES",
    "FIRST_STAGE",
    "OPEN_STAGES",
    "STAGES",
    "STAGE_CODES",
    "Stage",
    "stage_label",
]


@dataclass(frozen=True, slots=True)
class Stage:
    code: str
    ru: str
    en: str
    closed: bool = False


STAGES: tuple[Stage, ...] = (
    Stage("new", "Новая", "New"),
    Stage("qualification", "Квалификация", "Qualification"),
    Stage("proposal", "Коммерческое предложение", "Proposal"),
    Stage("negotiation", "Переговоры", "Negotiation"),
    Stage("contract", "Договор", "Contract"),
    Stage("won", "Успешно закрыта", "Won", closed=True),
    Stage("lost", "Проиграна", "Lost", closed=True),
)
STAGE_CODES: tuple[str, ...] = tuple(s.code for s in STAGES)
OPEN_STAGES: tuple[str, ...] = tuple(s.code for s in STAGES if not s.closed)
CLOSED_STAGES: tuple[str, ...] = tuple(s.code for s in STAGES if s.closed)
FIRST_STAGE = STAGES[0].code
_BY_CODE = {s.code: s for s in STAGES}


def stage_label(code: str, locale: str = "ru") -> str:
    """The label of a stage (``ru`` or ``en``); an unknown code is returned as is."""
    stage = _BY_CODE.get(code)
    if stage is None:
        return code
    return stage.en if locale == "en" else stage.ru
