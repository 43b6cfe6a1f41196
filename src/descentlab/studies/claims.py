"""Claims that can fail: predictions fixed before the run, judged over seeds with an interval.

A study declares its :class:`Prediction` objects as data (source, quoted statement, measured quantity, predicted
side of a threshold). After the run it hands in one value per evaluation seed for each prediction
(:class:`Measurement`); :func:`judge` turns them into a mean, a two-sided 95 % Student-t interval over seeds and a
three-valued verdict:

- ``holds``: the whole interval lies on the predicted side of the threshold;
- ``fails``: the whole interval lies on the other side;
- ``inconclusive``: it straddles the threshold (or fewer than two finite seeds, or the study forced it, e.g. a
  tuning grid that does not bracket the optimum).

:class:`Check` holds sanity conditions and identities (never counted as claims) and :class:`Anchor` compares a
measured quantity with a published number. :func:`tune` is the one helper every study uses to give each compared
arm its own hyper-parameter, chosen on tuning seeds disjoint from the evaluation seeds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

VERDICTS = ("holds", "fails", "inconclusive")
ANCHOR_VERDICTS = ("reproduced", "partly", "not reproduced")
TUNING_SEED_OFFSET = 1000
"""Tuning seeds are ``1000, 1001, ...``; evaluation seeds are ``0, 1, ...``: the two never overlap."""
INTERVAL_METHOD = "Student t, 95 %, over seeds"


def _finite(values: Iterable[Any]) -> list[float]:
    out = []
    for v in values:
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(f):
            out.append(f)
    return out


def t_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """Mean and two-sided Student-t interval of ``values`` (finite ones only); (nan, -inf, inf) when n < 2."""
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level!r}")
    xs = _finite(values)
    n = len(xs)
    if n == 0:
        return math.nan, -math.inf, math.inf
    mean = sum(xs) / n
    if n < 2:
        return mean, -math.inf, math.inf
    from scipy import stats

    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    return mean, mean - half, mean + half


@dataclass(frozen=True)
class Prediction:
    """A claim fixed before the run: where it comes from, what is measured per seed, and the predicted side.

    ``direction`` is ``">"`` (the per-seed statistic is predicted above ``threshold``) or ``"<"`` (below). The
    threshold and its ``tolerance`` note come from the source or from theory, never from a measurement.
    """

    name: str
    statement: str
    source: str
    quantity: str
    direction: str
    threshold: float = 0.0
    tolerance: str = ""

    def __post_init__(self) -> None:
        if self.direction not in (">", "<"):
            raise ValueError(
                f"prediction {self.name!r}: direction must be '>' or '<', got {self.direction!r}"
            )
        if not math.isfinite(float(self.threshold)):
            raise ValueError(f"prediction {self.name!r}: threshold must be finite, got {self.threshold!r}")
        if not self.name or not self.statement or not self.source or not self.quantity:
            raise ValueError(
                f"prediction {self.name!r}: name, statement, source and quantity are all required"
            )

    @property
    def predicted(self) -> str:
        """The prediction as text, e.g. ``"> 0"``."""
        return f"{self.direction} {self.threshold:g}"

    def to_dict(self) -> dict[str, Any]:
        """The declared prediction as JSON (no numbers measured yet)."""
        return {
            "name": self.name,
            "claim": self.statement,
            "source": self.source,
            "quantity": self.quantity,
            "predicted": self.predicted,
            "direction": self.direction,
            "threshold": float(self.threshold),
            "tolerance": self.tolerance,
        }


@dataclass
class Measurement:
    """The per-evaluation-seed values of one prediction's statistic, with a note and an optional forced reason.

    ``inconclusive`` (a reason) forces the verdict to ``inconclusive`` whatever the values say, e.g. when a tuning
    grid did not bracket an arm's optimum.
    """

    values: Sequence[float]
    evidence: str = ""
    inconclusive: str | None = None


def verdict(direction: str, threshold: float, lo: float, hi: float) -> str:
    """Three-valued verdict of an interval ``[lo, hi]`` against ``direction threshold``."""
    if direction not in (">", "<"):
        raise ValueError(f"direction must be '>' or '<', got {direction!r}")
    if any(math.isnan(x) for x in (lo, hi)):
        return "inconclusive"
    if direction == ">":
        if lo > threshold:
            return "holds"
        if hi < threshold:
            return "fails"
    else:
        if hi < threshold:
            return "holds"
        if lo > threshold:
            return "fails"
    return "inconclusive"


def judge(
    prediction: Prediction, measured: Measurement | Sequence[float], level: float = 0.95
) -> dict[str, Any]:
    """Judge ``prediction`` on per-seed values: mean, t-interval, n and the three-valued verdict (a dict)."""
    m = measured if isinstance(measured, Measurement) else Measurement(list(measured))
    raw = [float(v) if v is not None else math.nan for v in m.values]
    xs = _finite(raw)
    mean, lo, hi = t_interval(xs, level)
    v = verdict(prediction.direction, prediction.threshold, lo, hi)
    reasons = [m.inconclusive] if m.inconclusive else []
    evidence = m.evidence
    if len(xs) < len(raw):
        dropped = f"{len(raw) - len(xs)} of {len(raw)} seeds gave no finite value"
        reasons.append(dropped)
        evidence = f"{evidence}; {dropped}" if evidence else dropped
    if len(xs) < 2:
        reasons.append(f"{len(xs)} finite value(s): an interval needs at least 2 seeds")
    if reasons:
        v = "inconclusive"
    out = prediction.to_dict()
    out.update(
        values=raw,
        n=len(xs),
        mean=mean,
        interval=[lo, hi],
        interval_method=INTERVAL_METHOD,
        verdict=v,
        holds=v == "holds",
        evidence=evidence,
    )
    if reasons:
        out["inconclusive_reason"] = "; ".join(reasons)
    return out


@dataclass(frozen=True)
class Check:
    """A sanity condition or identity (what follows from the algebra): listed apart, never counted as a claim."""

    name: str
    check: str
    passed: bool
    evidence: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON form for summary.json's ``checks``."""
        return {
            "name": self.name,
            "check": self.check,
            "passed": bool(self.passed),
            "evidence": self.evidence,
        }


@dataclass(frozen=True)
class Anchor:
    """A published number to reproduce: ``quantity``, ``published`` value and its ``source``.

    The verdict compares the measured per-seed values with the published number: ``reproduced`` when the
    published value lies in the 95 % interval widened by the factor ``within`` (interval ``[lo / within,
    hi * within]`` for positive numbers), ``partly`` when the mean lies within a factor ``partly`` of it, else
    ``not reproduced``.
    """

    quantity: str
    published: float
    source: str
    within: float = 1.25
    partly: float = 3.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.published) and self.published > 0):
            raise ValueError(
                f"anchor {self.quantity!r}: published value must be positive, got {self.published!r}"
            )
        if not (self.within >= 1 and self.partly >= self.within):
            raise ValueError(
                f"anchor {self.quantity!r}: need 1 <= within <= partly, got {self.within}, {self.partly}"
            )

    def judge(self, values: Sequence[float], note: str = "") -> dict[str, Any]:
        """Compare per-seed ``values`` with the published number (dict for summary.json's ``anchors``)."""
        xs = _finite(values)
        mean, lo, hi = t_interval(xs)
        if not xs:
            v, ratio = "not reproduced", math.nan
        else:
            ratio = mean / self.published
            lo_w = lo / self.within if lo > 0 else lo * self.within
            if lo_w <= self.published <= hi * self.within or (
                len(xs) == 1 and 1 / self.within <= ratio <= self.within
            ):
                v = "reproduced"
            elif 1 / self.partly <= ratio <= self.partly:
                v = "partly"
            else:
                v = "not reproduced"
        return {
            "quantity": self.quantity,
            "published": float(self.published),
            "source": self.source,
            "values": [float(x) for x in values],
            "mean": mean,
            "interval": [lo, hi],
            "n": len(xs),
            "ratio": ratio,
            "verdict": v,
            "rule": f"published in interval widened x{self.within:g} -> reproduced; mean within x{self.partly:g} "
            "-> partly",
            "note": note,
        }


def eval_seeds(cfg: Mapping[str, Any]) -> list[int]:
    """The evaluation seeds of a study config: ``0 .. seeds-1``."""
    n = int(cfg["seeds"])
    if n < 1:
        raise ValueError(f"seeds must be >= 1, got {n}")
    return list(range(n))


def tuning_seeds(cfg: Mapping[str, Any]) -> list[int]:
    """The tuning seeds of a study config (``tuning_seeds``, default 1): ``1000, 1001, ...``, disjoint from eval."""
    n = int(cfg.get("tuning_seeds", 1))
    if n < 1:
        raise ValueError(f"tuning_seeds must be >= 1, got {n}")
    return [TUNING_SEED_OFFSET + i for i in range(n)]


@dataclass
class Tuned:
    """The outcome of :func:`tune`: the chosen value, every value tried with its mean score, and bracketing."""

    value: float
    scores: dict[float, float]
    seeds: list[int]
    metric: str
    bracketed: bool
    extended: int = 0
    history: list[tuple[float, int, float]] = field(default_factory=list)

    @property
    def grid(self) -> list[float]:
        """The values tried, in increasing order."""
        return sorted(self.scores)

    def note(self, name: str = "lr") -> str:
        """One line: the chosen value, the grid and whether it brackets the optimum."""
        where = "" if self.bracketed else " (at the grid's edge: the grid does not bracket the optimum)"
        return (
            f"{name} {self.value:g} chosen by {self.metric} on tuning seeds {self.seeds} from "
            f"{', '.join(f'{g:g}' for g in self.grid)}{where}"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form for a study's numbers."""
        return {
            "value": self.value,
            "scores": {f"{k:g}": v for k, v in sorted(self.scores.items())},
            "seeds": self.seeds,
            "metric": self.metric,
            "bracketed": self.bracketed,
            "extended": self.extended,
        }


def tune(
    score: Callable[[float, int], float],
    grid: Sequence[float],
    seeds: Sequence[int],
    *,
    metric: str,
    minimize: bool = True,
    extend: int = 2,
) -> Tuned:
    """Choose a hyper-parameter from a geometric ``grid`` by the mean of ``score(value, seed)`` over ``seeds``.

    Non-finite scores (diverged runs) count as the worst. When the best value sits at an edge of the grid, the grid
    is extended past that edge by the grid's own ratio, up to ``extend`` times; ``Tuned.bracketed`` says whether the
    final best value has a tried neighbour on both sides. Pass tuning seeds (see :func:`tuning_seeds`), never the
    evaluation seeds.
    """
    values = sorted(float(g) for g in grid)
    if len(values) < 2:
        raise ValueError(f"tune needs at least 2 grid values, got {list(grid)!r}")
    if any(not (math.isfinite(v) and v > 0) for v in values):
        raise ValueError(f"tune's grid must hold finite positive values, got {list(grid)!r}")
    if not seeds:
        raise ValueError("tune needs at least one tuning seed")
    scores: dict[float, float] = {}
    history: list[tuple[float, int, float]] = []

    def evaluate(v: float) -> None:
        per = []
        for s in seeds:
            x = float(score(v, int(s)))
            history.append((v, int(s), x))
            per.append(x if math.isfinite(x) else (math.inf if minimize else -math.inf))
        scores[v] = sum(per) / len(per)

    def best() -> float:
        return min(sorted(scores), key=lambda v: scores[v] if minimize else -scores[v])

    for v in values:
        evaluate(v)
    extended = 0
    while True:
        tried = sorted(scores)
        b = best()
        at_low, at_high = b == tried[0], b == tried[-1]
        if not (at_low or at_high) or extended >= extend:
            break
        if at_low:
            evaluate(tried[0] * tried[0] / tried[1])
        else:
            evaluate(tried[-1] * tried[-1] / tried[-2])
        extended += 1
    tried = sorted(scores)
    b = best()
    return Tuned(
        value=b,
        scores=dict(sorted(scores.items())),
        seeds=[int(s) for s in seeds],
        metric=metric,
        bracketed=tried[0] < b < tried[-1],
        extended=extended,
        history=history,
    )


__all__ = [
    "ANCHOR_VERDICTS",
    "INTERVAL_METHOD",
    "TUNING_SEED_OFFSET",
    "VERDICTS",
    "Anchor",
    "Check",
    "Measurement",
    "Prediction",
    "Tuned",
    "eval_seeds",
    "judge",
    "t_interval",
    "tune",
    "tuning_seeds",
    "verdict",
]
