"""Claims that can fail: predictions fixed before the run, judged over seeds with an interval.

A study declares its :class:`Prediction` objects as data (source, quoted statement, measured quantity, predicted
side of a threshold, scale, test, smallest effect of interest, how a censored seed counts, version). After the run
it hands in one value per evaluation seed for each prediction (:class:`Measurement`); :func:`judge` turns them into
an estimate, an interval and a three-valued verdict:

- ``holds``: the interval lies wholly on the predicted side of the threshold;
- ``fails``: the interval excludes every effect as large as the declared ``margin`` (the smallest effect of
  interest) on the predicted side -- with ``margin`` 0 that is "the interval lies wholly on the other side";
- ``inconclusive``: neither (or the study forced it, e.g. a tuning grid that does not bracket the optimum).

Seeds come in blocks under a :class:`SeedPlan` declared in advance (an O'Brien-Fleming-type group-sequential
boundary): at look ``k`` the interval is the repeated confidence interval at that look's nominal level, so a
prediction may be decided early and the chance of a wrong verdict over all looks stays <= ``alpha``.
:class:`Sequential` tracks which predictions are still undecided after each block. A fixed number of seeds is the
one-look plan (the ordinary 95 % two-sided Student-t interval). Per-seed values are judged by a Student-t interval on
the mean (``test="t"``) or, for discrete outcomes and for values without any spread, by the exact sign test on the
median (``scipy.stats.binomtest``, order-statistic interval). Ratios are judged on the log scale (``scale="log"``).
:func:`adjust` adds Holm and Benjamini-Hochberg verdicts over a family of judged predictions
(``statsmodels.stats.multitest.multipletests`` on the one-sided p-values).

:class:`Check` holds sanity conditions and identities (never counted as claims) and :class:`Anchor` compares a
measured quantity with a published number by equivalence within a declared tolerance. :func:`tune` is the one
helper every study uses to give each compared arm its own hyper-parameter, chosen on tuning seeds disjoint from the
evaluation seeds.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

VERDICTS = ("holds", "fails", "inconclusive")
ANCHOR_VERDICTS = ("reproduced", "inconclusive", "not reproduced", "direction and size only")
TUNING_SEED_OFFSET = 1000
"""Tuning seeds are ``1000, 1001, ...``; evaluation seeds are ``0, 1, ...``: the two never overlap."""
MIN_TUNING_SEEDS = 3
"""The protocol's number of tuning seeds: a choice must not depend on one seed's luck."""
INTERVAL_METHOD = "Student t, 95 %, over seeds"
ALPHA = 0.025
"""One-sided error rate of each of a prediction's two tests (holds, fails): a 95 % two-sided interval at one look."""
SCALES = ("linear", "log", "log-given")
"""``linear``: values judged as they are; ``log``: positive ratios judged as ``log(value)`` against
``log(threshold)``; ``log-given``: the study already hands in logarithms of ratios (threshold on that scale)."""
TESTS = ("t", "sign")
"""``t``: Student-t interval on the mean; ``sign``: exact sign test on the median (discrete outcomes)."""
ADJUSTMENTS = {"holm": "Holm (family-wise)", "fdr_bh": "Benjamini-Hochberg (false discovery rate)"}


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


# --------------------------------------------------------------------------------------------------------------
# The stopping rule: an O'Brien-Fleming-type group-sequential boundary
# --------------------------------------------------------------------------------------------------------------


def _crossing(c: float, fractions: tuple[float, ...]) -> float:
    """P(Z_k >= c / sqrt(t_k) at some look k) for the z statistics of one Brownian motion seen at ``fractions``.

    On the score scale ``S_k = Z_k sqrt(t_k) = W(t_k)`` the O'Brien-Fleming boundary is the constant ``c``; the chance
    of staying below it at every look is computed by the recursive numerical integration of Armitage, McPherson and
    Rowe (1969) with Simpson's rule on a fine grid (deterministic).
    """
    import numpy as np
    from scipy import stats

    t = [float(x) for x in fractions]
    if len(t) == 1:
        return float(stats.norm.sf(c / math.sqrt(t[0])) if t[0] != 1.0 else stats.norm.sf(c))
    lo = min(c, 0.0) - 9.0 * math.sqrt(t[-1])
    s = np.linspace(lo, c, 801)
    w = np.full(s.size, 2.0)  # Simpson's rule
    w[1::2] = 4.0
    w[0] = w[-1] = 1.0
    w *= (s[1] - s[0]) / 3.0
    f = np.exp(-0.5 * s**2 / t[0]) / math.sqrt(
        2 * math.pi * t[0]
    )  # density of W(t_1), kept below the boundary
    d2 = (s[:, None] - s[None, :]) ** 2
    for k in range(1, len(t) - 1):
        var = t[k] - t[k - 1]
        f = np.exp(-0.5 * d2 / var) @ (w * f) / math.sqrt(2 * math.pi * var)
    stay = float(np.sum(w * f * stats.norm.cdf((c - s) / math.sqrt(t[-1] - t[-2]))))
    return float(min(1.0, max(0.0, 1.0 - stay)))


@functools.lru_cache(maxsize=256)
def _obf_constant(alpha: float, fractions: tuple[float, ...]) -> float:
    """The O'Brien-Fleming constant c: crossing c / sqrt(t_k) at any look has probability ``alpha`` under the null."""
    from scipy import optimize

    return float(optimize.brentq(lambda c: _crossing(c, fractions) - alpha, 0.0, 12.0, xtol=1e-10))


@dataclass(frozen=True)
class SeedPlan:
    """The stopping rule, declared before any seed runs: cumulative seed counts at each look and the error rate.

    ``blocks=(5, 10, 20)`` looks after 5, 10 and 20 evaluation seeds. Each of a prediction's two one-sided tests
    (holds: the effect lies on the predicted side; fails: it is smaller than the smallest effect of interest) uses the
    O'Brien-Fleming-type boundary ``z_k >= c / sqrt(n_k / n_K)`` with ``c`` chosen so that the chance of crossing at
    any look under the null is ``alpha`` (exact for z statistics, by the multivariate normal of the looks). A
    Student-t or sign statistic is compared at the same nominal one-sided level ``1 - Phi(c / sqrt(n_k / n_K))``.
    """

    blocks: tuple[int, ...]
    alpha: float = ALPHA
    rule: str = "O'Brien-Fleming"

    def __post_init__(self) -> None:
        b = tuple(self.blocks)
        if not b or any(isinstance(n, bool) or int(n) != n or n < 1 for n in b):
            raise ValueError(f"seed plan blocks must be positive integers, got {self.blocks!r}")
        if any(b2 <= b1 for b1, b2 in zip(b, b[1:])):
            raise ValueError(f"seed plan blocks must increase, got {self.blocks!r}")
        if not 0 < self.alpha < 0.5:
            raise ValueError(f"seed plan alpha must lie in (0, 0.5), got {self.alpha!r}")
        if self.rule != "O'Brien-Fleming":
            raise ValueError(f'seed plan rule must be "O\'Brien-Fleming", got {self.rule!r}')
        object.__setattr__(self, "blocks", tuple(int(n) for n in b))

    @classmethod
    def fixed(cls, n: int, alpha: float = ALPHA) -> SeedPlan:
        """One look after ``n`` seeds: the ordinary fixed-sample test (two-sided 95 % interval at alpha 0.025)."""
        return cls((int(n),), alpha)

    @property
    def fractions(self) -> tuple[float, ...]:
        """Information fractions ``n_k / n_K`` of the looks."""
        return tuple(n / self.blocks[-1] for n in self.blocks)

    @property
    def constant(self) -> float:
        """The boundary constant ``c`` (z at the last look)."""
        return _obf_constant(float(self.alpha), self.fractions)

    @property
    def z_bounds(self) -> list[float]:
        """The z boundary ``c / sqrt(t_k)`` at each look."""
        return [self.constant / math.sqrt(t) for t in self.fractions]

    @property
    def levels(self) -> list[float]:
        """The nominal one-sided level of each look (the last one is below ``alpha`` when there are several)."""
        from scipy import stats

        return [float(stats.norm.sf(z)) for z in self.z_bounds]

    def look_of(self, n: int) -> int:
        """Index of the look whose seed count is ``n`` (ValueError when ``n`` is not a declared look)."""
        if n not in self.blocks:
            raise ValueError(f"{n} seeds is not a look of the plan {list(self.blocks)}")
        return self.blocks.index(n)

    def repeated_p(self, p_nominal: float, look: int) -> float:
        """The repeated p-value: the smallest alpha at which this plan would have stopped at ``look`` with a
        statistic of one-sided nominal p-value ``p_nominal`` (equal to ``p_nominal`` for one look)."""
        from scipy import stats

        if (
            not math.isfinite(p_nominal) or p_nominal >= 1.0
        ):  # no evidence at all (no finite value, or every seed
            return (
                1.0  # on the other side): before 2026-12-07 a multi-look plan turned this into 0.0 (z = -inf)
            )
        if len(self.blocks) == 1:
            return float(min(1.0, max(0.0, p_nominal)))
        z = float(stats.norm.isf(min(1.0, max(p_nominal, 1e-300))))
        return _crossing(z * math.sqrt(self.fractions[look]), self.fractions)

    def describe(self) -> str:
        """One line for summaries and pages."""
        if len(self.blocks) == 1:
            return f"fixed {self.blocks[0]} seeds, one-sided alpha {self.alpha:g} per test (two-sided 95 % interval)"
        lv = ", ".join(f"{n}: {a:.4f}" for n, a in zip(self.blocks, self.levels))
        return (
            f"{self.rule} group-sequential, looks after {', '.join(map(str, self.blocks))} seeds, one-sided alpha "
            f"{self.alpha:g} per test; nominal level per look {lv}"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form (summary.json's ``design``)."""
        return {
            "rule": self.rule,
            "blocks": list(self.blocks),
            "alpha": self.alpha,
            "z_bounds": self.z_bounds,
            "nominal_levels": self.levels,
            "description": self.describe(),
        }


# --------------------------------------------------------------------------------------------------------------
# Predictions and their judgement
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prediction:
    """A claim fixed before the run: where it comes from, what is measured per seed, and the predicted side.

    ``direction`` is ``">"`` (the per-seed statistic is predicted above ``threshold``), ``"<"`` (below) or ``"="``
    (equivalence: predicted within ``threshold ± margin``, judged by two one-sided tests; ``fails`` when the interval
    lies wholly outside the band; ``margin`` is then the declared band and must be > 0). The
    threshold and its ``tolerance`` note come from the source or from theory, never from a measurement. Declared
    with it: ``scale`` (see :data:`SCALES`; ratios go on the log scale), ``test`` (see :data:`TESTS`; discrete
    outcomes take the exact sign test), ``margin`` (the smallest effect of interest beyond the threshold, on the
    judged scale, with ``margin_source`` saying where it comes from; ``fails`` when the interval excludes effects that
    large), ``censor`` (how a seed that never reaches its target is counted, e.g. "at the step budget"; empty: such a
    seed makes the verdict inconclusive) and ``version`` (bumped whenever the prediction changes).
    """

    name: str
    statement: str
    source: str
    quantity: str
    direction: str
    threshold: float = 0.0
    tolerance: str = ""
    scale: str = "linear"
    test: str = "t"
    margin: float = 0.0
    margin_source: str = ""
    censor: str = ""
    version: int = 1

    def __post_init__(self) -> None:
        if self.direction not in (">", "<", "="):
            raise ValueError(
                f"prediction {self.name!r}: direction must be '>', '<' or '=', got {self.direction!r}"
            )
        if self.direction == "=" and not (isinstance(self.margin, (int, float)) and self.margin > 0):
            raise ValueError(
                f"prediction {self.name!r}: an equivalence ('=') needs its band as margin > 0, got {self.margin!r}"
            )
        if not math.isfinite(float(self.threshold)):
            raise ValueError(f"prediction {self.name!r}: threshold must be finite, got {self.threshold!r}")
        if not self.name or not self.statement or not self.source or not self.quantity:
            raise ValueError(
                f"prediction {self.name!r}: name, statement, source and quantity are all required"
            )
        if self.scale not in SCALES:
            raise ValueError(f"prediction {self.name!r}: scale must be one of {SCALES}, got {self.scale!r}")
        if self.scale == "log" and not self.threshold > 0:
            raise ValueError(
                f"prediction {self.name!r}: a log-scale threshold is a ratio and must be > 0, got {self.threshold!r}"
            )
        if self.test not in TESTS:
            raise ValueError(f"prediction {self.name!r}: test must be one of {TESTS}, got {self.test!r}")
        if isinstance(self.margin, bool) or not (math.isfinite(float(self.margin)) and self.margin >= 0):
            raise ValueError(f"prediction {self.name!r}: margin must be finite and >= 0, got {self.margin!r}")
        if self.margin > 0 and not self.margin_source:
            raise ValueError(
                f"prediction {self.name!r}: a margin needs its margin_source (where it comes from)"
            )
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 1:
            raise ValueError(
                f"prediction {self.name!r}: version must be an integer >= 1, got {self.version!r}"
            )

    @property
    def predicted(self) -> str:
        """The prediction as text, e.g. ``"> 0"`` or ``"= 0 ± 0.02"``."""
        if self.direction == "=":
            return f"= {self.threshold:g} ± {self.margin:g}"
        return f"{self.direction} {self.threshold:g}"

    @property
    def judged_threshold(self) -> float:
        """The threshold on the judged scale (``log(threshold)`` for ``scale="log"``)."""
        return math.log(self.threshold) if self.scale == "log" else float(self.threshold)

    @property
    def effect_of_interest(self) -> float:
        """The smallest effect of interest on the judged scale: threshold + margin on the predicted side (for an
        equivalence, the band's upper edge; the band is ``threshold ± margin``)."""
        sign = -1.0 if self.direction == "<" else 1.0
        return self.judged_threshold + sign * float(self.margin)

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
            "scale": self.scale,
            "test": self.test,
            "margin": float(self.margin),
            "margin_source": self.margin_source,
            "effect_of_interest": self.effect_of_interest,
            "censor": self.censor,
            "version": self.version,
        } | ({"band": [self.judged_threshold - self.margin, self.judged_threshold + self.margin]}
             if self.direction == "=" else {})  # fmt: skip


def predictions_hash(predictions: Iterable[Prediction]) -> str:
    """SHA-256 of the declared predictions (their JSON, keys sorted): a run records it, a reader recomputes it."""
    doc = json.dumps([p.to_dict() for p in predictions], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(doc.encode()).hexdigest()


@dataclass
class Measurement:
    """The per-evaluation-seed values of one prediction's statistic, with a note and an optional forced reason.

    ``inconclusive`` (a reason) forces the verdict to ``inconclusive`` whatever the values say, e.g. when a tuning
    grid did not bracket an arm's optimum. ``budget`` is the value a censored seed (non-finite: it never reached its
    target) takes when the prediction declares ``censor``: one number, or one per seed (e.g. a ratio whose
    denominator is the step budget).
    """

    values: Sequence[float]
    evidence: str = ""
    inconclusive: str | None = None
    budget: float | Sequence[float] | None = None


def verdict(direction: str, threshold: float, lo: float, hi: float, margin: float = 0.0) -> str:
    """Three-valued verdict of an interval ``[lo, hi]`` against ``direction threshold`` and the effect of interest.

    ``holds`` when the interval clears the threshold on the predicted side; ``fails`` when it excludes every effect
    of at least ``margin`` beyond the threshold on that side; else ``inconclusive``. For ``"="`` (equivalence):
    ``holds`` when the interval lies inside ``threshold ± margin``, ``fails`` when it lies wholly outside.
    """
    if direction not in (">", "<", "="):
        raise ValueError(f"direction must be '>', '<' or '=', got {direction!r}")
    if not (math.isfinite(margin) and margin >= 0):
        raise ValueError(f"margin must be finite and >= 0, got {margin!r}")
    if any(math.isnan(x) for x in (lo, hi)):
        return "inconclusive"
    if direction == "=":
        if threshold - margin < lo and hi < threshold + margin:
            return "holds"
        if lo > threshold + margin or hi < threshold - margin:
            return "fails"
        return "inconclusive"
    if direction == ">":
        if lo > threshold:
            return "holds"
        if hi < threshold + margin:
            return "fails"
    else:
        if hi < threshold:
            return "holds"
        if lo > threshold - margin:
            return "fails"
    return "inconclusive"


@functools.lru_cache(maxsize=4096)
def _t_crit(level: float, df: int) -> float:
    from scipy import stats

    return float(stats.t.isf(level, df))


@functools.lru_cache(maxsize=4096)
def _sign_rank(level: float, n: int) -> int:
    """Largest j with P(Binomial(n, 1/2) <= j - 1) <= level (0 when none): the order statistic of the bound."""
    from scipy import stats

    j = 0
    while j < n and stats.binom.cdf(j, n, 0.5) <= level:
        j += 1
    return j


def _sign_test(y: list[float], theta: float, boundary: float, level: float) -> dict[str, Any]:
    """Exact sign test on oriented values ``y``: holds side ``median > theta``, fails side ``median < boundary``."""
    from scipy import stats

    n = len(y)
    k_h = sum(v > theta for v in y)  # a value on the threshold counts against the claim
    k_f = sum(v < boundary for v in y)
    p_h = float(stats.binomtest(k_h, n, 0.5, alternative="greater").pvalue)
    p_f = float(stats.binomtest(k_f, n, 0.5, alternative="greater").pvalue)
    ys = sorted(y)
    j = _sign_rank(level, n)
    lo = ys[j - 1] if j >= 1 else -math.inf
    hi = ys[n - j] if j >= 1 else math.inf
    srt = ys[n // 2] if n % 2 else 0.5 * (ys[n // 2 - 1] + ys[n // 2])
    return {"estimate": srt, "lo": lo, "hi": hi, "p_holds": p_h, "p_fails": p_f}


def _t_test(y: list[float], theta: float, boundary: float, level: float) -> dict[str, Any]:
    """Student-t on oriented values ``y``: holds side ``mean > theta``, fails side ``mean < boundary``."""
    from scipy import stats

    n = len(y)
    mean = sum(y) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in y) / (n - 1))
    se = sd / math.sqrt(n)
    half = _t_crit(level, n - 1) * se
    return {
        "estimate": mean,
        "lo": mean - half,
        "hi": mean + half,
        "p_holds": float(stats.t.sf((mean - theta) / se, n - 1)),
        "p_fails": float(stats.t.cdf((mean - boundary) / se, n - 1)),
    }


def judge(
    prediction: Prediction,
    measured: Measurement | Sequence[float],
    level: float = 0.95,
    *,
    plan: SeedPlan | None = None,
    look: int | None = None,
    p_values: bool = True,
) -> dict[str, Any]:
    """Judge ``prediction`` on per-seed values: estimate, interval, p-values, n and the verdict (a dict).

    Without ``plan`` the seeds form one look at two-sided ``level`` (95 %: one-sided alpha 0.025 per test). With a
    :class:`SeedPlan`, ``look`` (index; default: the last look the values reach) picks the block of seeds judged
    (the first ``plan.blocks[look]`` values) and the interval is that look's repeated confidence interval. Seeds
    without a finite value are never dropped silently: censored at ``Measurement.budget`` when the prediction
    declares ``censor``, otherwise they make the verdict inconclusive. ``p_values=False`` skips the repeated
    p-values (None), which a multi-look plan computes by numerical integration.
    """
    m = measured if isinstance(measured, Measurement) else Measurement(list(measured))
    raw = [float(v) if v is not None else math.nan for v in m.values]
    if plan is None:
        if not 0 < level < 1:
            raise ValueError(f"level must lie in (0, 1), got {level!r}")
        plan = SeedPlan.fixed(max(len(raw), 1), alpha=(1 - level) / 2)
        look = 0
    elif look is None:
        reached = [k for k, n in enumerate(plan.blocks) if n <= len(raw)]
        if not reached:
            raise ValueError(
                f"prediction {prediction.name!r}: {len(raw)} values do not reach the plan's first look "
                f"({plan.blocks[0]} seeds)"
            )
        look = reached[-1]
    if not 0 <= look < len(plan.blocks):
        raise ValueError(f"look must index the plan's {len(plan.blocks)} looks, got {look!r}")
    if len(raw) < plan.blocks[look]:
        raise ValueError(
            f"prediction {prediction.name!r}: look {look + 1} needs {plan.blocks[look]} values, got {len(raw)}"
        )
    if m.budget is not None and not prediction.censor:
        raise ValueError(
            f"prediction {prediction.name!r} declares no censoring but a budget {m.budget!r} was handed in"
        )
    raw = raw[: plan.blocks[look]]
    a = plan.levels[look]
    reasons = [m.inconclusive] if m.inconclusive else []
    notes: list[str] = []
    evidence = m.evidence
    vals = list(raw)
    n_censored = 0
    if prediction.censor:
        bad = [i for i, v in enumerate(vals) if not math.isfinite(v)]
        if bad and m.budget is None:
            reasons.append(f"{len(bad)} censored seed(s) but no budget value handed in")
        elif bad:
            per = list(m.budget) if isinstance(m.budget, Sequence) else [m.budget] * len(m.values)
            if len(per) < len(vals):
                raise ValueError(
                    f"prediction {prediction.name!r}: {len(per)} budget values for {len(vals)} seeds"
                )
            for i in bad:
                vals[i] = float(per[i])
            # a budget that is itself NaN censors nothing
            counted = [i for i in bad if math.isfinite(vals[i])]
            n_censored = len(counted)
            if counted:
                at = ", ".join(f"{vals[i]:.4g}" for i in counted)
                notes.append(
                    f"{n_censored} of {len(vals)} seeds censored ({prediction.censor}): counted at {at}"
                )
    if prediction.scale == "log":
        nonpos = sum(math.isfinite(v) and v <= 0 for v in vals)
        if nonpos:
            reasons.append(f"{nonpos} non-positive value(s) cannot be judged on the log scale")
        vals = [math.log(v) if math.isfinite(v) and v > 0 else math.nan for v in vals]
    xs = [v for v in vals if math.isfinite(v)]
    if len(xs) < len(vals):
        dropped = f"{len(vals) - len(xs)} of {len(vals)} seeds gave no finite value"
        reasons.append(dropped)
        notes.append(dropped)
    equiv = prediction.direction == "="
    s = -1.0 if prediction.direction == "<" else 1.0
    theta = s * prediction.judged_threshold
    boundary = theta + float(prediction.margin)
    y = [s * v for v in xs]
    test = prediction.test
    if test == "t" and len(y) >= 2 and max(y) - min(y) <= 1e-12 * max(1.0, abs(y[0])):
        test = "sign"
        notes.append(
            "no spread across seeds: a t-interval would have zero width, judged by the exact sign test"
        )
    stats_: dict[str, Any] = {
        "estimate": math.nan,
        "lo": -math.inf,
        "hi": math.inf,
        "p_holds": 1.0,
        "p_fails": 1.0,
    }
    if test == "t" and len(y) < 2:
        reasons.append(f"{len(y)} finite value(s): an interval needs at least 2 seeds")
        if y:
            stats_["estimate"] = y[0]
    elif y and equiv:  # two one-sided tests: inside the band on both sides (holds), outside it on one (fails)
        fn, band = (_t_test if test == "t" else _sign_test), float(prediction.margin)
        # inside: p_holds = above the lower edge, p_fails = below the upper; outside: the other way round
        inside = fn(y, theta - band, theta + band, a)
        outside = fn(y, theta + band, theta - band, a)
        stats_ = {**inside, "p_holds": max(inside["p_holds"], inside["p_fails"]),
                  "p_fails": min(outside["p_holds"], outside["p_fails"])}  # fmt: skip
    elif y:
        stats_ = (_t_test if test == "t" else _sign_test)(y, theta, boundary, a)
    if s > 0:
        est, lo, hi = stats_["estimate"], stats_["lo"], stats_["hi"]
    else:
        est, lo, hi = -stats_["estimate"], -stats_["hi"], -stats_["lo"]
    holds = stats_["p_holds"] <= a and y != []
    fails = stats_["p_fails"] <= a and y != []
    v = "holds" if holds else "fails" if fails else "inconclusive"
    if holds and fails and not equiv:
        notes.append("on the predicted side but smaller than the smallest effect of interest")
    if reasons:
        v = "inconclusive"
    p_h = plan.repeated_p(stats_["p_holds"], look) if p_values else None
    p_f = plan.repeated_p(stats_["p_fails"], look) if p_values else None
    if notes:
        evidence = "; ".join([evidence, *notes]) if evidence else "; ".join(notes)
    pct = 100 * (1 - 2 * a)
    if test == "t":
        method = (
            INTERVAL_METHOD if len(plan.blocks) == 1 and abs(a - 0.025) < 1e-12 else f"Student t, {pct:.3g} %"
        )
    else:
        method = f"exact sign test (binomial), order-statistic interval for the median, {pct:.3g} %"
    if len(plan.blocks) > 1:
        method += f", repeated interval at look {look + 1} of {len(plan.blocks)} ({plan.rule})"
    if prediction.scale != "linear":
        method += ", log scale"
    out = prediction.to_dict()
    out.update(
        values=raw,
        n=len(xs),
        seeds_used=len(raw),
        n_censored=n_censored,
        mean=est,
        estimate="median" if test == "sign" else "mean",
        interval=[lo, hi],
        interval_method=method,
        test_used=test,
        look=look + 1,
        nominal_level=a,
        design=plan.describe(),
        p_holds=p_h,
        p_fails=p_f,
        p_value=None
        if p_h is None or p_f is None
        else p_h
        if v == "holds"
        else p_f
        if v == "fails"
        else min(p_h, p_f),
        verdict=v,
        holds=v == "holds",
        evidence=evidence,
    )
    if reasons:
        out["inconclusive_reason"] = "; ".join(reasons)
    return out


def censored_log_ratios(
    numerator: Sequence[float], denominator: Sequence[float], at: float
) -> tuple[list[float], list[float]]:
    """Per seed ``ln(numerator / denominator)`` (NaN where either is not finite and positive) and the values the
    same ratios take when a non-finite entry (a diverged run) is counted at ``at`` (e.g. the chance loss): the
    ``(values, budget)`` pair for a :class:`Measurement` of a prediction that declares this censoring."""
    if not (math.isfinite(at) and at > 0):
        raise ValueError(f"the censoring value must be finite and positive, got {at!r}")
    if len(numerator) != len(denominator):
        raise ValueError(f"{len(numerator)} numerators for {len(denominator)} denominators")

    def ok(x: float) -> bool:
        return math.isfinite(x) and x > 0

    values, budget = [], []
    for a, b in zip(map(float, numerator), map(float, denominator)):
        values.append(math.log(a / b) if ok(a) and ok(b) else math.nan)
        a2 = a if ok(a) else at if not math.isfinite(a) else math.nan
        b2 = b if ok(b) else at if not math.isfinite(b) else math.nan
        budget.append(math.log(a2 / b2) if ok(a2) and ok(b2) else math.nan)
    return values, budget


class Sequential:
    """Judge declared predictions on blocks of seeds under a :class:`SeedPlan` fixed in advance.

    After each block, :meth:`look` judges the predictions still undecided at that look's boundary and returns those
    still undecided: a study adds the next block of seeds only for them (:attr:`next_seeds` says how many seeds the
    next look needs, None when done). A decided prediction keeps the verdict of the look that decided it.
    """

    def __init__(self, predictions: Iterable[Prediction], plan: SeedPlan):
        self.predictions = list(predictions)
        names = [p.name for p in self.predictions]
        if len(set(names)) != len(names):
            raise ValueError(f"prediction names repeat: {names}")
        if not isinstance(plan, SeedPlan):
            raise TypeError(f"plan must be a SeedPlan, got {type(plan).__name__}")
        self.plan = plan
        self.looks_done = 0
        self._results: dict[str, dict[str, Any]] = {}
        self._measured: dict[str, Any] = {}

    def undecided(self) -> list[str]:
        """Names of the predictions without a holds/fails verdict yet (declaration order)."""
        return [
            p.name
            for p in self.predictions
            if self._results.get(p.name, {}).get("verdict") not in ("holds", "fails")
        ]

    @property
    def done(self) -> bool:
        """Whether every prediction is decided or the plan's last look is taken."""
        return not self.undecided() or self.looks_done >= len(self.plan.blocks)

    @property
    def next_seeds(self) -> int | None:
        """Cumulative number of evaluation seeds the next look needs, or None when done."""
        return None if self.done else self.plan.blocks[self.looks_done]

    def look(self, measured: Mapping[str, Measurement | Sequence[float]]) -> list[str]:
        """Judge the undecided predictions on their values for the next look; returns the still-undecided names.

        ``measured`` maps each undecided prediction to at least ``next_seeds`` per-seed values (seeds 0, 1, ...);
        values of decided predictions are ignored.
        """
        if self.done:
            raise ValueError("the seed plan is done: every prediction is decided or the last look was taken")
        k = self.looks_done
        for p in self.predictions:
            if p.name not in self.undecided():
                continue
            if p.name not in measured:
                raise ValueError(f"look {k + 1}: no values for the undecided prediction {p.name!r}")
            r = judge(p, measured[p.name], plan=self.plan, look=k, p_values=False)
            self._measured[p.name] = measured[p.name]
            r["decided_at"] = self.plan.blocks[k] if r["verdict"] in ("holds", "fails") else None
            r["stopped"] = (
                "decided"
                if r["decided_at"]
                else "maximum"
                if k == len(self.plan.blocks) - 1
                else "continuing"
            )
            self._results[p.name] = r
        self.looks_done += 1
        return self.undecided()

    def results(self) -> list[dict[str, Any]]:
        """The judged predictions (declaration order), each with ``seeds_used``, ``look``, ``decided_at``."""
        missing = [p.name for p in self.predictions if p.name not in self._results]
        if missing:
            raise ValueError(f"no look taken yet for {missing}")
        out = []
        for p in self.predictions:
            r = dict(self._results[p.name])
            full = judge(p, self._measured[p.name], plan=self.plan, look=r["look"] - 1)
            r.update(p_holds=full["p_holds"], p_fails=full["p_fails"], p_value=full["p_value"])
            out.append(r)
        return out

    def verdicts(self) -> dict[str, str]:
        """Name -> the verdict so far (without the p-values :meth:`results` computes)."""
        return {
            p.name: self._results.get(p.name, {}).get("verdict", "inconclusive") for p in self.predictions
        }


def adjust(
    claims: Sequence[Mapping[str, Any]], alpha: float = ALPHA, methods: Sequence[str] = tuple(ADJUSTMENTS)
) -> list[dict[str, Any]]:
    """Add multiplicity-adjusted verdicts to judged claims (a family): ``adjusted[method]`` and ``p_adjusted``.

    Each claim's one-sided ``p_value`` (the side of its verdict, a repeated p-value under a sequential plan) goes into
    ``statsmodels.stats.multitest.multipletests``; a raw holds/fails stays when the adjusted p-value is <= ``alpha``,
    else becomes inconclusive. Claims without a p-value (legacy) keep their raw verdict, marked ``unadjusted``.
    """
    from statsmodels.stats.multitest import multipletests

    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}")
    bad = [m for m in methods if m not in ADJUSTMENTS]
    if bad:
        raise ValueError(f"unknown adjustment {bad}; choose from {sorted(ADJUSTMENTS)}")
    out = [dict(c) for c in claims]
    idx, ps = [], []
    for i, c in enumerate(out):
        try:
            p = float(c.get("p_value"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue
        if math.isfinite(p):
            idx.append(i)
            ps.append(min(1.0, max(0.0, p)))
    for c in out:
        c["adjusted"] = {m: c.get("verdict", "inconclusive") for m in methods}
        c["p_adjusted"] = {m: None for m in methods}
        if not any(c is out[i] for i in idx):
            c["unadjusted"] = "no p-value"
    if ps:
        for m in methods:
            reject, p_adj, _, _ = multipletests(ps, alpha=alpha, method=m)
            for i, r, pa in zip(idx, reject, p_adj):
                raw = out[i].get("verdict", "inconclusive")
                out[i]["adjusted"][m] = raw if (raw in ("holds", "fails") and bool(r)) else "inconclusive"
                out[i]["p_adjusted"][m] = float(pa)
    return out


def verdict_counts(claims: Iterable[Mapping[str, Any]], method: str | None = None) -> dict[str, int]:
    """Counts of holds / fails / inconclusive: raw (``method`` None) or under an adjustment from :func:`adjust`."""
    out = dict.fromkeys(VERDICTS, 0)
    for c in claims:
        v = c.get("verdict") if method is None else (c.get("adjusted") or {}).get(method, c.get("verdict"))
        if v not in out:
            v = "holds" if c.get("holds") else "fails"
        out[v] += 1
    return out


def split_half(prediction: Prediction, measured: Measurement | Sequence[float]) -> dict[str, Any]:
    """Judge ``prediction`` twice, on the first and the second half of its seeds (disjoint), and compare verdicts."""
    m = measured if isinstance(measured, Measurement) else Measurement(list(measured))
    vals = list(m.values)
    h = len(vals) // 2
    if h < 1:
        raise ValueError(
            f"prediction {prediction.name!r}: split-half needs at least 2 seeds, got {len(vals)}"
        )
    halves = []
    for part in (vals[:h], vals[h : 2 * h]):
        halves.append(judge(prediction, Measurement(part, m.evidence, m.inconclusive, m.budget)))
    return {
        "name": prediction.name,
        "seeds_per_half": h,
        "first": halves[0]["verdict"],
        "second": halves[1]["verdict"],
        "intervals": [halves[0]["interval"], halves[1]["interval"]],
        "agree": halves[0]["verdict"] == halves[1]["verdict"],
    }


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


ANCHOR_SETTINGS = ("same", "other")


@dataclass(frozen=True)
class Anchor:
    """A published number to reproduce, judged by equivalence within a declared tolerance.

    ``tolerance`` is additive (``published +- tolerance``, for percentages and differences) or multiplicative
    (``[published / tolerance, published * tolerance]``, a factor > 1, for ratios and positive quantities), with
    ``reason`` saying where it comes from (the source's own spread or a stated reason). ``reproduced`` when the
    whole 95 % interval over seeds lies inside the band, ``not reproduced`` when it lies wholly outside, else
    ``inconclusive`` -- never ``reproduced`` from fewer than two seeds, and a seed without a finite value makes it
    inconclusive. ``setting="other"`` (another scale, data set or model) gives no verdict: ``direction and size
    only``. ``source`` names what a reader can open (seed file and slide, paper and figure, repository and file).
    """

    quantity: str
    published: float
    source: str
    tolerance: float | None = None
    kind: str = "multiplicative"
    reason: str = ""
    setting: str = "same"

    def __post_init__(self) -> None:
        if not math.isfinite(float(self.published)):
            raise ValueError(
                f"anchor {self.quantity!r}: published value must be finite, got {self.published!r}"
            )
        if self.kind not in ("additive", "multiplicative"):
            raise ValueError(
                f"anchor {self.quantity!r}: kind must be 'additive' or 'multiplicative', got {self.kind!r}"
            )
        if self.setting not in ANCHOR_SETTINGS:
            raise ValueError(
                f"anchor {self.quantity!r}: setting must be 'same' or 'other', got {self.setting!r}"
            )
        if self.kind == "multiplicative" and not self.published > 0:
            raise ValueError(
                f"anchor {self.quantity!r}: a multiplicative tolerance needs a positive published value, "
                f"got {self.published!r}"
            )
        if self.setting == "same":
            if self.tolerance is None:
                raise ValueError(f"anchor {self.quantity!r}: declare a tolerance (or setting='other')")
            tol = float(self.tolerance)
            if not math.isfinite(tol) or (self.kind == "multiplicative" and tol <= 1) or tol <= 0:
                raise ValueError(
                    f"anchor {self.quantity!r}: tolerance must be a finite "
                    f"{'factor > 1' if self.kind == 'multiplicative' else 'positive number'}, got {self.tolerance!r}"
                )
            if not self.reason:
                raise ValueError(f"anchor {self.quantity!r}: say where the tolerance comes from (reason)")

    @property
    def band(self) -> tuple[float, float] | None:
        """The equivalence band (None for another setting)."""
        if self.setting == "other" or self.tolerance is None:
            return None
        t = float(self.tolerance)
        if self.kind == "additive":
            return self.published - t, self.published + t
        return self.published / t, self.published * t

    @property
    def rule(self) -> str:
        """The rule as one line of text."""
        if self.band is None:
            return "another scale or setting: direction and size only, no verdict"
        lo, hi = self.band
        tol = f"+- {self.tolerance:g}" if self.kind == "additive" else f"x/ {self.tolerance:g}"
        return (
            f"band {tol} = [{lo:.4g}, {hi:.4g}]: interval inside -> reproduced, wholly outside -> not reproduced, "
            "else inconclusive"
        )

    def judge(self, values: Sequence[float], note: str = "") -> dict[str, Any]:
        """Compare per-seed ``values`` with the published number (dict for summary.json's ``anchors``)."""
        raw = [float(v) if v is not None else math.nan for v in values]
        xs = _finite(raw)
        mean, lo, hi = t_interval(xs)
        band = self.band
        reasons = []
        if len(xs) < len(raw):
            reasons.append(f"{len(raw) - len(xs)} of {len(raw)} seeds gave no finite value")
        if band is None:
            v = "direction and size only"
        elif len(xs) < 2:
            v = "inconclusive"
            reasons.append(f"{len(xs)} finite value(s): equivalence needs an interval over at least 2 seeds")
        elif reasons:
            v = "inconclusive"
        elif band[0] <= lo and hi <= band[1]:
            v = "reproduced"
        elif hi < band[0] or lo > band[1]:
            v = "not reproduced"
        else:
            v = "inconclusive"
        ratio = mean / self.published if xs and self.published != 0 else math.nan
        out = {
            "quantity": self.quantity,
            "published": float(self.published),
            "source": self.source,
            "setting": self.setting,
            "tolerance": None if self.tolerance is None else float(self.tolerance),
            "tolerance_kind": self.kind,
            "tolerance_reason": self.reason,
            "band": None if band is None else list(band),
            "values": raw,
            "mean": mean,
            "interval": [lo, hi],
            "n": len(xs),
            "ratio": ratio,
            "verdict": v,
            "rule": self.rule,
            "note": note,
        }
        if reasons:
            out["reason"] = "; ".join(reasons)
        return out


def eval_seeds(cfg: Mapping[str, Any]) -> list[int]:
    """The evaluation seeds of a study config: ``seed_start .. seed_start + seeds - 1`` (``seed_start`` default 0)."""
    n = int(cfg["seeds"])
    if n < 1:
        raise ValueError(f"seeds must be >= 1, got {n}")
    start = int(cfg.get("seed_start", 0))
    if not 0 <= start < TUNING_SEED_OFFSET - n:
        raise ValueError(f"seed_start must lie in [0, {TUNING_SEED_OFFSET - n}), got {start}")
    return list(range(start, start + n))


def tuning_seeds(cfg: Mapping[str, Any]) -> list[int]:
    """The tuning seeds of a study config (``tuning_seeds``, default 3): ``1000, 1001, ...``, disjoint from eval."""
    n = int(cfg.get("tuning_seeds", MIN_TUNING_SEEDS))
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

    @property
    def enough_seeds(self) -> bool:
        """Whether the choice rests on at least :data:`MIN_TUNING_SEEDS` tuning seeds."""
        return len(self.seeds) >= MIN_TUNING_SEEDS

    def note(self, name: str = "lr") -> str:
        """One line: the chosen value, the grid, whether it brackets the optimum and whether seeds are enough."""
        where = "" if self.bracketed else " (at the grid's edge: the grid does not bracket the optimum)"
        few = (
            ""
            if self.enough_seeds
            else f" (only {len(self.seeds)} tuning seed(s), fewer than {MIN_TUNING_SEEDS}: the choice may rest on "
            "one seed's luck)"
        )
        return (
            f"{name} {self.value:g} chosen by the mean {self.metric} on tuning seeds {self.seeds} from "
            f"{', '.join(f'{g:g}' for g in self.grid)}{where}{few}"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form for a study's numbers."""
        return {
            "value": self.value,
            "grid": self.grid,
            "scores": {f"{k:g}": v for k, v in sorted(self.scores.items())},
            "seeds": self.seeds,
            "metric": self.metric,
            "bracketed": self.bracketed,
            "extended": self.extended,
            "enough_seeds": self.enough_seeds,
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
    evaluation seeds. A ``score`` with a ``prefetch(pairs)`` method (e.g. :class:`descentlab.studies.tables.
    PopulationScore`) is handed every (value, seed) pair of the grid, then of each extension, before they are read:
    it trains them as one population.
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

    prefetch = getattr(score, "prefetch", None)  # a population score trains value x seed pairs together
    if callable(prefetch):
        prefetch([(v, int(s)) for v in values for s in seeds])
    for v in values:
        evaluate(v)
    extended = 0
    while True:
        tried = sorted(scores)
        b = best()
        at_low, at_high = b == tried[0], b == tried[-1]
        if not (at_low or at_high) or extended >= extend:
            break
        nxt = tried[0] * tried[0] / tried[1] if at_low else tried[-1] * tried[-1] / tried[-2]
        if callable(prefetch):
            prefetch([(nxt, int(s)) for s in seeds])
        evaluate(nxt)
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
    "ADJUSTMENTS",
    "ALPHA",
    "ANCHOR_VERDICTS",
    "INTERVAL_METHOD",
    "MIN_TUNING_SEEDS",
    "SCALES",
    "TESTS",
    "TUNING_SEED_OFFSET",
    "VERDICTS",
    "Anchor",
    "Check",
    "Measurement",
    "Prediction",
    "SeedPlan",
    "Sequential",
    "Tuned",
    "adjust",
    "censored_log_ratios",
    "eval_seeds",
    "judge",
    "predictions_hash",
    "split_half",
    "t_interval",
    "tune",
    "tuning_seeds",
    "verdict",
    "verdict_counts",
]
