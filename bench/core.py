"""What a benchmark suite is, and how its repeated runs become figures with references.

A suite measures a set of named values in one run (``measure(ctx) -> {key: value}``); the runner
calls it several times. Every :class:`Figure` names its reference, another key of the same run,
so its ratio is always taken between two numbers measured side by side; the median, min and max
are over the runs, of the value and of the per-run ratio alike.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Values = dict[str, float]


@dataclass(frozen=True)
class Target:
    """A bound on a figure's ratio to its reference (``on="ratio"``) or on its value."""

    op: Literal["<=", ">="]
    bound: float
    on: Literal["ratio", "value"] = "ratio"

    def met(self, value: float, ratio: float | None) -> bool | None:
        x = ratio if self.on == "ratio" else value
        if x is None or math.isnan(x):
            return None
        return x <= self.bound if self.op == "<=" else x >= self.bound

    def text(self, unit: str) -> str:
        sign = "≤" if self.op == "<=" else "≥"
        if self.on == "ratio":
            return f"{sign} {self.bound:g}×"
        return f"{sign} {self.bound:g} {unit}"


@dataclass(frozen=True)
class Figure:
    key: str
    label: str
    unit: str
    reference: str | None = None  # key of a figure of the same run
    target: Target | None = None
    digits: int = 1


@dataclass(frozen=True)
class Series:
    """Figures that differ only in a size: ``points`` are (size, key); cost grows with ``size``.

    ``per_item`` says the values are already per unit of size (per band, per byte): the total
    cost is then value x size before the fit.
    """

    name: str
    size_label: str
    points: tuple[tuple[float, str], ...]
    per_item: bool = False
    cost_is_rate: bool = False  # values are rates (ops/s): cost per op is 1/value


@dataclass
class Context:
    quick: bool
    runs: int
    scratch: Path
    notes: dict[str, str] = field(default_factory=dict)  # free text a suite leaves for the docs
    profiles: dict[str, str] = field(default_factory=dict)  # name -> profile text

    def pick(self, quick: float, full: float) -> float:
        return quick if self.quick else full


@dataclass
class Suite:
    name: str
    title: str
    measure: Callable[[Context], Values]
    figures: list[Figure]
    prose: str = ""
    series: list[Series] = field(default_factory=list)
    runs: int | None = None  # fixed number of runs (a suite too long to repeat)


@dataclass
class Stat:
    median: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, samples: Sequence[float]) -> Stat | None:
        clean = [s for s in samples if not math.isnan(s)]
        if not clean:
            return None
        return cls(statistics.median(clean), min(clean), max(clean), len(clean))


@dataclass
class FigureResult:
    figure: Figure
    value: Stat
    ratio: Stat | None

    @property
    def met(self) -> bool | None:
        target = self.figure.target
        if target is None:
            return None
        return target.met(self.value.median, self.ratio.median if self.ratio else None)


@dataclass
class Growth:
    series: Series
    exponent: float
    points: list[tuple[float, float]]

    @property
    def superlinear(self) -> bool:
        return self.exponent > 1.15

    @property
    def verdict(self) -> str:
        if self.exponent > 1.15:
            return "superlinear"
        if self.exponent < 0.85:
            return "sublinear"
        return "linear"


@dataclass
class SuiteResult:
    suite: Suite
    runs: list[Values]
    seconds: float
    figures: list[FigureResult] = field(default_factory=list)
    growth: list[Growth] = field(default_factory=list)
    error: str | None = None


def summarise(suite: Suite, runs: list[Values], seconds: float) -> SuiteResult:
    result = SuiteResult(suite, runs, seconds)
    for figure in suite.figures:
        values = [run.get(figure.key, math.nan) for run in runs]
        value = Stat.of(values)
        if value is None:
            continue
        ratio = None
        if figure.reference is not None:
            ratio = Stat.of([run.get(figure.key, math.nan) / run[figure.reference]
                             if run.get(figure.reference) else math.nan for run in runs])
        result.figures.append(FigureResult(figure, value, ratio))
    for series in suite.series:
        growth = fit_growth(series, runs)
        if growth is not None:
            result.growth.append(growth)
    return result


def fit_growth(series: Series, runs: list[Values]) -> Growth | None:
    """Least-squares slope of log(total cost) on log(size): 1 is linear, 2 quadratic."""
    points: list[tuple[float, float]] = []
    for size, key in series.points:
        stat = Stat.of([run.get(key, math.nan) for run in runs])
        if stat is None or stat.median <= 0:
            continue
        cost = 1 / stat.median if series.cost_is_rate else stat.median
        points.append((size, cost * size if series.per_item else cost))
    if len(points) < 2:
        return None
    xs = [math.log(s) for s, _ in points]
    ys = [math.log(c) for _, c in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0
    return Growth(series, slope, points)


def fmt(value: float, digits: int) -> str:
    if math.isnan(value):
        return "–"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"
