"""The programme's yearly cycle (沪水务〔2020〕610号, DOMAIN.md): for programme year Y, applications in
September-October of Y (deadline 18 October), training in mid-November, guidance from November to
January, evaluation on site from February to April of Y+1 and naming in May of Y+1. The evaluation
covers the reporting year Y (the calendar year the measures ran in, Asia/Shanghai).

Pure: dates in, phases out. The API stores per-year overrides; `default_cycle` is the notice's pattern.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, model_validator


class Phase(StrEnum):
    APPLICATION = "application"  # 自主申报
    TRAINING = "training"  # 开展培训
    GUIDANCE = "guidance"  # 业务指导
    EVALUATION = "evaluation"  # 考评验收
    NAMING = "naming"  # 命名表彰


PHASE_NAMES: dict[Phase, tuple[str, str]] = {
    Phase.APPLICATION: ("自主申报", "applications"),
    Phase.TRAINING: ("开展培训", "training"),
    Phase.GUIDANCE: ("业务指导", "guidance"),
    Phase.EVALUATION: ("考评验收", "evaluation"),
    Phase.NAMING: ("命名表彰", "naming"),
}


class Window(BaseModel):
    """A phase's first and last day (both inclusive, Asia/Shanghai)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: dt.date
    end: dt.date

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.end < self.start:
            raise ValueError(f"ends {self.end} before it starts {self.start}")
        return self

    def contains(self, day: dt.date) -> bool:
        return self.start <= day <= self.end


class Cycle(BaseModel):
    """One programme year: the phases' windows, in order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    year: int
    application: Window
    training: Window
    guidance: Window
    evaluation: Window
    naming: Window

    @model_validator(mode="after")
    def _phases_in_order(self) -> Cycle:
        # Training and guidance overlap (the notice: training mid-November, guidance November-January);
        # what must hold is that applications close before training and evaluation, and naming follows.
        if not self.application.end < self.training.start <= self.evaluation.start < self.naming.start:
            raise ValueError("applications must close before training; evaluation must start before naming")
        if not self.application.end < self.guidance.start:
            raise ValueError("guidance must start after the application deadline")
        return self

    def window(self, phase: Phase) -> Window:
        win: Window = getattr(self, phase.value)
        return win

    @property
    def deadline(self) -> dt.date:
        """The last day applications are accepted (inclusive)."""
        return self.application.end

    @property
    def reporting_period(self) -> tuple[dt.date, dt.date]:
        """The calendar year an evaluation of this cycle covers: start, end (exclusive)."""
        return dt.date(self.year, 1, 1), dt.date(self.year + 1, 1, 1)

    def open_phases(self, day: dt.date) -> list[Phase]:
        return [p for p in Phase if self.window(p).contains(day)]


def default_cycle(year: int, deadline: tuple[int, int] = (10, 18)) -> Cycle:
    """The notice's dates, moved to `year`; the application deadline (month, day) is configurable."""
    y1 = year + 1
    return Cycle(
        year=year,
        application=Window(start=dt.date(year, 9, 1), end=dt.date(year, *deadline)),
        training=Window(start=dt.date(year, 11, 11), end=dt.date(year, 11, 20)),
        guidance=Window(start=dt.date(year, 11, 1), end=dt.date(y1, 1, 31)),
        evaluation=Window(start=dt.date(y1, 2, 1), end=dt.date(y1, 4, 30)),
        naming=Window(start=dt.date(y1, 5, 1), end=dt.date(y1, 5, 31)),
    )


def parse_deadline(text: str) -> tuple[int, int]:
    """`MM-DD` (e.g. `10-18`) as (month, day); ValueError naming the problem."""
    try:
        month, day = (int(x) for x in text.split("-"))
        dt.date(2000, month, day)  # a leap year accepts every real month-day
    except ValueError as exc:
        raise ValueError(f"application deadline {text!r} is not MM-DD (e.g. 10-18)") from exc
    return month, day
