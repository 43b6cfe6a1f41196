"""Studies: one command per phenomenon from the lectures, with its figure and claims that can fail.

A study is a small module in this package that registers a :class:`Study`: name, seed slide, quick and full
configurations, its **predictions** (declared as data before any run: source, quoted statement, measured quantity,
predicted side of a threshold; see :mod:`descentlab.studies.claims`) and a ``run(ctx, config)`` function that
returns ``(numbers, measured)``, where ``measured`` maps each prediction's name to its per-evaluation-seed values.
``run(name, quick=False, **overrides)`` writes ``predictions.json`` before training, then executes the study through
``train()`` and the store, judges every prediction (mean, 95 % t-interval over seeds, verdict holds / fails /
inconclusive), and writes figures (PNG and SVG) and ``summary.json`` with ``claims``, ``checks`` (sanity conditions,
never counted as claims) and ``anchors`` (published numbers).

A study whose config declares ``seed_blocks`` (e.g. ``[5, 10, 20]``) can run sequentially (``run(...,
sequential=True)``): after each block of evaluation seeds the predictions are judged at an O'Brien-Fleming boundary and
the next block runs only while some are undecided (``ctx.undecided`` names them). ``split_half=True`` runs twice the
seeds and judges each prediction again on the second half (disjoint seeds); summary.json reports the agreement.
Every summary records the design (seed plan), the predictions' version and hash (``preregistration``) and the Holm and
Benjamini-Hochberg verdicts beside the raw ones.

The first Ctrl-C or SIGTERM stops the whole study: the run in progress stops at its next step boundary (checkpointed),
no run starts after it, nothing is judged, and ``summary.json`` says ``"status": "interrupted"`` with the runs that
ran. Run ids in a store are ``<study>-<digest of the configuration>-<n>``, so the same command again reuses the
runs that ended (rebuilt from their final state), resumes the cut one and trains the rest.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import secrets
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from descentlab import safe_write
from descentlab._registry import Registry
from descentlab.store import Run, Store
from descentlab.studies.claims import (
    ALPHA,
    Anchor,
    Check,
    Measurement,
    Prediction,
    SeedPlan,
    Sequential,
    Tuned,
    adjust,
    eval_seeds,
    judge,
    predictions_hash,
    split_half,
    tune,
    tuning_seeds,
    verdict_counts,
)
from descentlab.tasks.base import Task
from descentlab.train.interrupt import Interrupted, _DeferredInterrupt, signal_name

_REGISTRY = Registry("study")


@dataclass
class Claim:
    """Legacy two-valued claim (a sentence and whether one measurement backs it); new studies declare
    :class:`Prediction` objects instead. Kept so that old summaries and third-party studies still load."""

    claim: str
    holds: bool
    evidence: str

    def to_dict(self) -> dict[str, Any]:
        """The JSON form written to summary.json."""
        return {"claim": self.claim, "holds": bool(self.holds), "evidence": self.evidence}


@dataclass
class Study:
    """A declared study: its grid (``quick`` / ``full`` configs), where it comes from, and how to run it."""

    name: str
    description: str
    slide: str
    quick: dict[str, Any]
    full: dict[str, Any]
    run: Callable[[StudyContext, dict[str, Any]], tuple[dict[str, Any], Any]]
    seconds: tuple[float, float] | None = None
    """Measured (quick, full) wall seconds on the reference 2-core CPU, or None; ``tour --jobs`` starts the longest
    studies first."""
    predictions: tuple[Prediction, ...] = ()
    """The claims, fixed before the run: each is judged on the per-seed values ``run`` returns under its name."""
    in_tour: bool = True
    """Whether ``descentlab tour`` runs it by default (a long study can opt out; ``tour --only NAME`` still runs it)."""
    limits: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Allowed closed ranges of numeric settings, checked on overrides (on top of: finite; counts >= 1)."""
    may_be_empty: tuple[str, ...] = ()
    """List settings an empty list is a documented choice for (e.g. double-descent's ``widths=[]``: its polynomial
    part only); every other list setting must hold at least one value."""
    versions: tuple[tuple[int, str, str], ...] = ((1, "", "the predictions as first declared"),)
    """The predictions' history: ``(version, date, what changed)``, one entry per version; a changed prediction bumps
    its ``version`` and adds an entry here."""

    def __post_init__(self) -> None:
        names = [p.name for p in self.predictions]
        if len(set(names)) != len(names):
            raise ValueError(f"study {self.name!r}: prediction names repeat: {names}")
        listed = [int(v[0]) for v in self.versions]
        if listed != sorted(set(listed)) or (self.predictions and self.predictions_version not in listed):
            raise ValueError(
                f"study {self.name!r}: versions {listed} must increase and list the predictions' version "
                f"{self.predictions_version}"
            )

    @property
    def predictions_version(self) -> int:
        """The predictions' version: the highest version of any prediction (1 when none was changed)."""
        return max((p.version for p in self.predictions), default=1)

    def preregistration(self) -> dict[str, Any]:
        """Version, hash and history of the declared predictions (what summary.json and ``--predictions`` show)."""
        return {
            "version": self.predictions_version,
            "hash": predictions_hash(self.predictions),
            "versions": [{"version": int(v), "date": d, "changes": c} for v, d, c in self.versions],
        }


@dataclass
class StudyResult:
    """What a study produced: ``summary`` (the dict written to summary.json) and ``figures`` (paths)."""

    name: str
    summary: dict[str, Any]
    figures: list[Path]
    out: Path

    @property
    def claims(self) -> list[dict[str, Any]]:
        """The judged claims (each with ``verdict``, ``mean``, ``interval``, ``n``)."""
        return list(self.summary["claims"])

    @property
    def checks(self) -> list[dict[str, Any]]:
        """The sanity checks (not claims)."""
        return list(self.summary.get("checks", []))

    @property
    def anchors(self) -> list[dict[str, Any]]:
        """Published numbers compared with the measured ones."""
        return list(self.summary.get("anchors", []))

    @property
    def verdicts(self) -> dict[str, int]:
        """How many claims hold, fail and are inconclusive."""
        out = {"holds": 0, "fails": 0, "inconclusive": 0}
        for c in self.claims:
            out[c.get("verdict", "holds" if c.get("holds") else "fails")] += 1
        return out

    @property
    def all_hold(self) -> bool:
        """Whether every claim holds."""
        return all(c["holds"] for c in self.summary["claims"])


_NOT_IN_DIGEST = ("progress", "threads", "callbacks")


def _digestible(obj: Any) -> Any:
    """``obj`` as JSON-able data for :func:`_content_digest`: callables by their qualified name, tasks by name and
    configuration, tensors by shape and values."""
    if isinstance(obj, Mapping):
        return {str(k): _digestible(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_digestible(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return repr(obj)
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    if isinstance(obj, Task):  # name, configuration and a fingerprint of the data (a split is another task)
        parts = [
            p if isinstance(p, (tuple, list)) else (p,)
            for p in (obj.train_data, obj.val_data)
            if p is not None
        ]
        data = [t for part in parts for t in part]
        return {
            "task": obj.name,
            "config": _digestible(dict(obj.config or {})),
            "data": [_fingerprint(t) for t in data],
        }
    if hasattr(obj, "tolist"):
        return _digestible(obj.tolist())
    if callable(obj):  # a closure's plain values count (two thresholds of one lambda are two trainings)
        cells = [c.cell_contents for c in (getattr(obj, "__closure__", None) or ()) if _plain(c)]
        name = f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', type(obj).__name__)}"
        return {"callable": name, "closure": _digestible(cells)}
    return repr(obj)


def _fingerprint(t: Any) -> str:
    """Shape, dtype and a hash of the first and last 4 kB of a tensor (cheap, and the same in every process)."""
    import torch

    if not isinstance(t, torch.Tensor):
        return repr(type(t).__name__)
    raw = t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes()  # any dtype, bf16 too
    head = hashlib.sha256(raw[:4096] + raw[-4096:]).hexdigest()[:16]
    return f"{tuple(t.shape)}:{t.dtype}:{head}"


def _plain(cell: Any) -> bool:
    try:
        v = cell.cell_contents
    except ValueError:  # an empty cell
        return False
    return isinstance(v, (str, int, float, bool)) or v is None


def _content_digest(task: Any, kw: Mapping[str, Any]) -> str:
    """A short digest of what one training call of a study trains (task, settings, members): the same training
    gets the same run id in every execution and every block of seeds of a sequential run, so it is reused from the
    store instead of trained again -- and a different training never overwrites it."""
    what = {
        "task": _digestible(task),
        **{k: _digestible(v) for k, v in kw.items() if k not in _NOT_IN_DIGEST},
    }
    recorded = [_recorded_digest(c) for c in kw.get("callbacks") or () if getattr(c, "recorded", False)]
    if recorded:  # what a recorded callback logs is part of the run (no entry otherwise: older ids stay)
        what["recorded_callbacks"] = recorded
    text = json.dumps(what, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _recorded_digest(cb: Any) -> Any:
    """A recorded callback as digest data: its function (name, plain closure values), every ``every`` steps, and
    the plain attributes of a callable object (``FirstHit(0.5)`` and ``FirstHit(0.4)`` log different runs)."""
    fn = cb.fn
    is_object = hasattr(fn, "__dict__") and not hasattr(fn, "__code__")  # a callable instance, not a function
    attrs = {k: v for k, v in vars(fn).items() if _plain_value(v)} if is_object else {}
    return {"fn": _digestible(fn), "every": cb.every, "attrs": _digestible(attrs)}


def _plain_value(v: Any) -> bool:
    return isinstance(v, (str, int, float, bool)) or v is None


def _gathers(kw: Mapping[str, Any]) -> bool:
    """Whether a training call has a callback that gathers data of its own (anything but ``Callback(recorded=True)``):
    such a run is always trained again, never reused from the store."""
    return any(not getattr(c, "recorded", False) for c in kw.get("callbacks") or ())


def _same_settings(stored: Mapping[str, Any], task: Any, kw: Mapping[str, Any]) -> bool:
    """Whether a stored run's configuration has every setting a study asks for (the task, and each given keyword
    that the store records); a mismatch means the run is trained again."""
    name = task if isinstance(task, str) else getattr(task, "name", None)
    if stored.get("task") != name:
        return False
    for key, want in kw.items():
        if key in ("progress", "keep_model", "save_final", "threads", "run_id", "stop_when", "callbacks"):
            continue
        if key == "task_kw":
            if any(stored.get("task_kw", {}).get(k) != v for k, v in dict(want or {}).items()):
                return False
        elif key == "optimizer":
            if stored.get("optimizer") != (want.lower() if isinstance(want, str) else want):
                return False
        elif key in stored and json.dumps(stored[key], sort_keys=True, default=repr) != json.dumps(
            want, sort_keys=True, default=repr
        ):
            return False
    return True


@dataclass
class StudyContext:
    """Handed to a study's ``run``: trains through ``descentlab.train`` into the store and saves figures."""

    name: str
    out: Path
    store: Store | None
    quick: bool
    progress: Any = None
    figures: list[Path] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    anchors: list[dict[str, Any]] = field(default_factory=list)
    key: str = ""
    """The configuration's digest: run ids ``<study>-<key>-<what>`` are the same when the same study runs again."""
    stop: _DeferredInterrupt | None = None
    reused: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    undecided: list[str] | None = None
    """Under a sequential run, the predictions still undecided (the next block's seeds are for them); None: all."""
    _n: int = 0
    _token: str = ""
    _used: dict[str, int] = field(default_factory=dict)

    def _unique(self, rid: str, kw: Mapping[str, Any]) -> str:
        """``rid`` for this call; a second call with the same content and callbacks that gather data of their own
        (always trained again) gets ``rid-2``, ``rid-3``... so it never overwrites the first."""
        n = self._used.get(rid, 0) + 1
        self._used[rid] = n
        return rid if n == 1 or not _gathers(kw) else f"{rid}-{n}"

    def check(self, name: str, check: str, passed: bool, evidence: str = "") -> None:
        """Record a sanity check or identity (listed apart from the claims, never counted as one)."""
        self.checks.append(Check(name, check, bool(passed), evidence))

    def anchor(self, anchor: Anchor, values: Any, note: str = "") -> None:
        """Compare per-seed ``values`` with a published number (summary.json's ``anchors``)."""
        self.anchors.append(anchor.judge(list(values), note))

    def train(self, task: Any, **kw: Any) -> Run:
        """``descentlab.train`` with this study's store and progress (``keep_state=False``: no ``final.pt`` and no end
        state for a run whose weights nothing reads later; run again, it is reused from its stored metrics). Run
        ``n`` of a study with a store is
        ``<study>-<key>-<n>``: if the store holds it from an earlier execution of the same study, an ended run is
        reused (its model and optimizer rebuilt from its final state) and a cut one resumed; a run with callbacks
        that gather data of their own (anything but ``Callback(recorded=True)``) is trained again. Raises
        :class:`Interrupted` when the study is stopping (before a run starts) or when the run was interrupted."""
        from descentlab.train import train

        self._n += 1
        kw.setdefault("progress", False)
        if not kw.pop("keep_state", True):  # nothing later reads this run's weights: keep metrics only
            kw.update(save_final=False, keep_model=False, _no_state=True)
        if self.stop is not None:
            self.stop.stop()  # a signal arrived: no run starts after it
        if not self._token:  # one token per study run: two runs of a study in the same second never collide
            self._token = secrets.token_hex(3)
        t_call, rid = time.time(), self._unique(f"{self.name}-{self.key}-{_content_digest(task, kw)}", kw)
        try:
            if self.store is None or "run_id" in kw or not self.key:
                stamp = time.strftime("%Y%m%d-%H%M%S")
                rid = kw.setdefault("run_id", f"{self.name}-{stamp}-{self._token}-{self._n:03d}")
                kw.pop("_no_state", None)
                run = train(task, store=self.store if self.store is not None else False, **kw)
            else:
                run = self._train_or_reuse(task, rid, kw)
        except KeyboardInterrupt:  # a signal while the run was written down: it is stored, so it is listed
            for candidate in (rid, f"{rid}-{self._token}"):
                head = self.store.run_header(candidate) if self.store is not None else None
                if head is not None and head["updated"] >= t_call and candidate not in self.runs:
                    self.runs.append(candidate)
            raise
        self.runs.append(run.id)
        if run.status == "interrupted":
            raise Interrupted(getattr(run, "signal", None) or signal.SIGINT, f"run {run.id} was interrupted")
        self.advance()
        return run

    def train_many(self, task: Any, optimizer: Any, members: list[dict[str, Any]], **kw: Any) -> list[Run]:
        """``descentlab.train_many`` with this study's store and progress: population ``n`` of a study with a store is
        ``<study>-<key>-p<n>`` (members ``-0``, ``-1`` ...). Run again, a population whose members all ended in the
        store is reused (runs loaded, models rebuilt from their ``final.pt``), a cut one resumed, anything else
        trained again. Raises :class:`Interrupted` when the study is stopping or the population was interrupted."""
        from descentlab.train.population import train_many

        self._n += 1
        kw.setdefault("progress", False)
        if self.stop is not None:
            self.stop.stop()  # a signal arrived: no population starts after it
        if not self._token:
            self._token = secrets.token_hex(3)
        if self.store is None or "population_id" in kw or not self.key:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            kw.setdefault("population_id", f"{self.name}-{stamp}-{self._token}-p{self._n:03d}")
            runs = train_many(
                task, optimizer, members, store=self.store if self.store is not None else False, **kw
            )
        else:
            what = _content_digest(task, {**kw, "optimizer": optimizer, "members": members})
            pop_id = self._unique(f"{self.name}-{self.key}-p{what}", kw)
            runs = self._population_or_reuse(task, optimizer, members, pop_id, kw)
        self.runs.extend(r.id for r in runs)
        if any(r.status == "interrupted" for r in runs):
            sig = next((getattr(r, "signal", None) for r in runs if getattr(r, "signal", None)), None)
            raise Interrupted(
                sig or signal.SIGINT, f"population {runs[0].config['population']['id']} was interrupted"
            )
        self.advance()
        return runs

    def _population_or_reuse(
        self, task: Any, optimizer: Any, members: list[dict[str, Any]], pop_id: str, kw: dict[str, Any]
    ) -> list[Run]:
        """Train population ``pop_id``, or take it from the store where an earlier execution of this study left it."""
        from descentlab.train import DONE_STATUSES
        from descentlab.train.population import POPULATION_CHECKPOINT, reopen_many, resume_many, train_many

        assert self.store is not None
        ids = [f"{pop_id}-{i}" for i in range(len(members))]
        headers = [self.store.run_header(i) for i in ids]
        common = {**kw, "store": self.store, "population_id": pop_id}
        if all(h is None for h in headers):
            return train_many(task, optimizer, members, **common)
        if all(h is not None for h in headers) and not _gathers(kw):
            try:
                if all(h["status"] in DONE_STATUSES for h in headers):
                    runs = reopen_many(task, optimizer, members, ids, self.store, kw)
                    self.reused.extend(ids)
                    return runs
                if (self.store.checkpoint_dir(ids[0]) / POPULATION_CHECKPOINT).is_file():
                    runs = resume_many(ids[0], store=self.store, progress=kw.get("progress", False),
                                       task=task if isinstance(task, Task) else None)  # fmt: skip
                    self.resumed.extend(ids)
                    return runs
            except ValueError:  # another configuration, or a checkpoint that does not fit: train it again
                pass
        return train_many(task, optimizer, members, **common, overwrite=True)

    def _train_or_reuse(self, task: Any, run_id: str, kw: dict[str, Any]) -> Run:
        """Train run ``run_id``, or take it from the store where an earlier execution of this study left it."""
        from descentlab.train import DONE_STATUSES, load_checkpoint, train

        assert self.store is not None
        header = self.store.run_header(run_id)
        no_state = kw.pop("_no_state", False)
        common = {**kw, "store": self.store, "run_id": run_id,
                  "_keep_final_state": not _gathers(kw) and not no_state}  # fmt: skip
        if no_state and header is not None and header["status"] in DONE_STATUSES and not _gathers(kw):
            run = self.store.load_run(run_id)  # an ended run whose weights nobody reads: its stored metrics
            if _same_settings(run.config, task, kw):
                run.signal = None  # type: ignore[attr-defined]
                self.reused.append(run_id)
                return run
        if header is None:
            return train(task, **common)
        if header["status"] == "running":  # maybe another process is training it now: never take it over
            return train(task, **{**common, "run_id": f"{run_id}-{self._token}"})
        last = self.store.checkpoint_dir(run_id) / "last.pt"
        if not _gathers(kw) and last.is_file():
            ended = header["status"] in DONE_STATUSES
            try:
                ck = load_checkpoint(last)
                if ended:
                    run = train(task, **common, _resume_from=ck, _reopen="ended")
                else:
                    at = header["updated"]
                    run = train(task, **common, _resume_from=ck, _reopen="cut", _resume_updated=at)
                    run.history = self.store.metrics(run_id)  # the rows before the cut too
            except ValueError:  # another configuration, or a checkpoint that does not fit: train it again
                pass
            else:
                (self.reused if ended else self.resumed).append(run_id)
                return run
        return train(task, **common, overwrite=True)

    def advance(self, n: int = 1) -> None:
        """Advance the study's progress bar by ``n`` units of work."""
        if self.progress is not None:
            self.progress.advance(n)

    def save_figure(self, fig: Any, stem: str) -> Path:
        """Save a matplotlib figure as ``<out>/<stem>.png`` and ``.svg``; returns the PNG path."""
        import matplotlib.pyplot as plt

        png = self.out / f"{stem}.png"
        try:  # atomic; a symbolic link planted at either name is refused, never written through
            safe_write.save_figure(fig, png, dpi=120, bbox_inches="tight")
            safe_write.save_figure(fig, self.out / f"{stem}.svg", bbox_inches="tight")
        finally:
            plt.close(fig)
        self.figures.append(png)
        return png


def register(study: Study) -> None:
    """Add a study to the registry."""
    _REGISTRY.register(study.name, study, study.description)


def available() -> list[str]:
    """Names of the registered studies."""
    return _REGISTRY.available()


def describe() -> dict[str, str]:
    """Study name -> one-line description."""
    return _REGISTRY.describe()


def get(name: str) -> Study:
    """The study ``name`` (ValueError with suggestions when unknown)."""
    return _REGISTRY.factory(name)


_COUNT_INT = 1


def _check_setting(
    name: str, key: str, base: Any, value: Any, limits: Mapping[str, tuple[float, float]]
) -> None:
    """Refuse a nonsense study setting with the value named: an empty list where the study has a list, a non-number
    in a list of numbers, non-finite numbers, counts < 1, values out of limits."""
    vals = value if isinstance(value, (list, tuple)) else [value]
    if isinstance(base, (list, tuple)) and base and not vals:
        raise ValueError(f"study {name!r}: setting {key!r} must list at least one value, got {value!r}")
    numeric = isinstance(base, (list, tuple)) and all(
        isinstance(b, (int, float)) and not isinstance(b, bool) for b in base
    )
    if numeric and any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in vals):
        raise ValueError(f"study {name!r}: setting {key!r} must be a list of numbers, got {value!r}")
    for v in vals:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if not math.isfinite(float(v)):
            raise ValueError(f"study {name!r}: setting {key!r} must be finite, got {v!r}")
        if key in limits:
            lo, hi = limits[key]
            if not lo <= v <= hi:
                raise ValueError(f"study {name!r}: setting {key!r} must lie in [{lo:g}, {hi:g}], got {v!r}")
        elif (
            isinstance(base, int)
            and not isinstance(base, bool)
            and base >= _COUNT_INT
            and isinstance(v, int)
            and v < _COUNT_INT
        ):
            raise ValueError(f"study {name!r}: setting {key!r} is a count and must be >= 1, got {v!r}")
        elif isinstance(base, float) and base > 0 and v <= 0 and _positive_name(key):
            raise ValueError(f"study {name!r}: setting {key!r} must be positive, got {v!r}")


def _positive_name(key: str) -> bool:
    """Settings whose name says they are positive by nature (learning rates, fractions, spans, radii)."""
    k = key.lower()
    return any(t in k for t in ("lr", "fraction", "span", "rho", "eta", "alpha", "budget", "target"))


def _clean(obj: Any) -> Any:
    """Make numbers JSON-friendly (NaN/inf become strings, numpy/torch scalars become floats)."""
    if isinstance(obj, Mapping):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 0) == 0:
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    if hasattr(obj, "tolist"):
        return _clean(obj.tolist())
    return repr(obj)


def run(
    name: str,
    quick: bool = False,
    out: str | Path | None = None,
    seeds: int | None = None,
    store: Store | str | Path | bool | None = None,
    progress: bool = True,
    sequential: bool | None = None,
    split_half: bool = False,
    **overrides: Any,
) -> StudyResult:
    """Run study ``name`` (its quick or full grid, with ``overrides``) and write figures and summary.json.

    Output goes to ``out`` (default ``runs/studies/<name>/``); runs go to ``store``: None or True -> the default
    store, False -> no store (the runs are not kept), or a path / Store. ``sequential`` (default: whenever the config
    declares ``seed_blocks``, unless ``seeds`` asks for a fixed number) adds blocks of seeds until every prediction
    is decided or the last block ran;
    ``split_half`` runs twice the seeds and judges the second half again (fixed design only).
    """
    import matplotlib

    matplotlib.use("Agg")
    study = get(name)
    config = dict(study.quick if quick else study.full)
    if "seed_blocks" in overrides and "seeds" in config:
        config.setdefault("seed_blocks", [])  # any study with seeds can be run on a declared seed plan
    unknown = sorted(set(overrides) - set(config))
    if unknown:
        raise ValueError(
            f"study {name!r} has no setting {', '.join(map(repr, unknown))}; settings: {', '.join(sorted(config))}"
        )
    for k, v in overrides.items():
        base = config[k]
        if isinstance(
            base, (list, tuple)
        ):  # `--set alphas=0.1,0.05` gives a tuple, `--set alphas=0.1` a scalar
            config[k] = list(v) if isinstance(v, (list, tuple)) else [v]
        elif isinstance(base, bool) or base is None:
            config[k] = v
        elif isinstance(base, (int, float)) and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise ValueError(f"study {name!r}: setting {k!r} must be a number, got {v!r}")
        elif isinstance(base, int) and isinstance(v, float) and not float(v).is_integer():
            raise ValueError(f"study {name!r}: setting {k!r} must be an integer, got {v!r}")
        else:
            config[k] = type(base)(v) if isinstance(base, (int, float)) else v
        if not (k in study.may_be_empty and config[k] in ([], ())):
            _check_setting(name, k, base, config[k], study.limits)
    if seeds is not None:
        if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
            raise ValueError(f"seeds must be an integer >= 1, got {seeds!r}")
        config["seeds"] = int(seeds)
        if sequential is None and "seed_blocks" not in overrides:
            sequential = False  # a number of seeds asked for is a fixed design of that many seeds
    plan = _plan_for(name, config, sequential)
    if split_half and plan is not None:
        config["seeds"] = plan.blocks[-1]  # each half runs the whole seed plan on seeds of its own
    elif split_half:
        if "seeds" not in config:
            raise ValueError(f"study {name!r} has no 'seeds' setting to split")
        config["seeds"] = 2 * int(config["seeds"])
    elif plan is not None:
        config["seeds"] = plan.blocks[-1]
    out_dir = Path(out) if out is not None else Path("runs/studies") / name
    out_dir.mkdir(parents=True, exist_ok=True)
    if not (store is None or isinstance(store, (Store, str, os.PathLike, bool))):
        raise TypeError(f"store must be a path, a Store, None or False, got {type(store).__name__} {store!r}")
    own = not isinstance(store, Store) and store is not False
    st = (
        store
        if isinstance(store, Store)
        else None
        if store is False
        else Store(None if store is True else store)
    )
    seeds_used = {
        "evaluation": eval_seeds(config) if "seeds" in config else [],
        "tuning": tuning_seeds(config),
    }
    # The predictions are written before any training: a reader can check they were fixed in advance.
    safe_write.write_text(
        out_dir / "predictions.json",
        json.dumps(
            {
                "study": name,
                "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "seeds": seeds_used,
                "preregistration": study.preregistration(),
                "design": (plan or _fixed_plan(config, split_half)).to_dict(),
                "predictions": [p.to_dict() for p in study.predictions],
            },
            indent=2,
        ),
    )
    t0 = time.perf_counter()
    bar = _StudyBar(name, enabled=progress)
    key = _config_key(name, quick, config)
    ctx = StudyContext(name=name, out=out_dir, store=st, quick=quick, progress=bar, key=key)
    try:
        with bar, _DeferredInterrupt() as stop:  # the first Ctrl-C / SIGTERM stops the study, not one run
            ctx.stop = stop
            try:
                numbers, measured, seq = _execute(study, ctx, config, plan)
                if split_half and seq is not None:  # the second half: the same plan on the next seeds
                    *_, seq2 = _execute(study, ctx, config, plan, offset=plan.blocks[-1])
                    seq = (seq, seq2)
                stop.stop()  # a signal during the analysis: no verdict either
            except KeyboardInterrupt as exc:
                stop.hold = True  # writing down what ran: later signals are only noted
                signum = getattr(exc, "signum", None) or stop.signum or signal.SIGINT
                secs = time.perf_counter() - t0
                _write_interrupted(out_dir, name, quick, config, seeds_used, ctx, signum, secs)
                raise Interrupted(signum, f"study {name} interrupted ({signal_name(signum)})") from None
    finally:
        if own and st is not None:
            st.close()
    claims, halves = _judge_all(study, measured, seq, split_half)
    if seq is not None:
        seeds_used["evaluation"] = list(range(max((c.get("seeds_used", 0) for c in claims), default=0)))
        if halves is not None:
            top = max((h["seeds_used"][1] for h in halves["predictions"]), default=0)
            seeds_used["second_half"] = list(range(plan.blocks[-1], plan.blocks[-1] + top))
    summary = {
        "study": name,
        "slide": study.slide,
        "quick": quick,
        "config": _clean(config),
        "seeds": seeds_used,
        "preregistration": study.preregistration(),
        "design": (plan or _fixed_plan(config, split_half)).to_dict(),
        "multiplicity": {
            "alpha": ALPHA,
            "family": f"the {len(claims)} predictions of this study (the tour adjusts over all studies)",
            "counts": {
                m: verdict_counts(claims, None if m == "raw" else m) for m in ("raw", "holm", "fdr_bh")
            },
        },
        "numbers": _clean(numbers),
        "claims": _clean(claims),
        "checks": [c.to_dict() for c in ctx.checks],
        "anchors": _clean(ctx.anchors),
        "figures": [p.name for p in ctx.figures],
        "runs": ctx.runs,
        "reused_runs": ctx.reused,
        "resumed_runs": ctx.resumed,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    if halves is not None:
        summary["split_half"] = _clean(halves)
    safe_write.write_text(out_dir / "summary.json", json.dumps(summary, indent=2))  # atomic, never via a link
    return StudyResult(name=name, summary=summary, figures=list(ctx.figures), out=out_dir)


def _config_key(name: str, quick: bool, config: Mapping[str, Any]) -> str:
    """A short digest of what a study execution trains (name, variant, settings): its run ids carry it."""
    text = json.dumps({"study": name, "quick": bool(quick), "config": _clean(config)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def _write_interrupted(
    out_dir: Path,
    name: str,
    quick: bool,
    config: Mapping[str, Any],
    seeds: Mapping[str, Any],
    ctx: StudyContext,
    signum: int,
    seconds: float,
) -> None:
    """summary.json of a stopped study: what ran, which run was cut, and no verdict."""
    by = signal_name(signum)
    summary = {
        "study": name,
        "status": "interrupted",
        "interrupted_by": by,
        "quick": quick,
        "config": _clean(config),
        "seeds": _clean(seeds),
        "claims": [],
        "checks": [],
        "anchors": [],
        "figures": [],
        "runs": ctx.runs,
        "reused_runs": ctx.reused,
        "resumed_runs": ctx.resumed,
        "note": (
            f"interrupted ({by}) after {len(ctx.runs)} run(s); nothing was judged. The same command again reuses "
            "the runs that ended, resumes the cut one and trains the rest."
        ),
        "seconds": round(seconds, 2),
    }
    safe_write.write_text(out_dir / "summary.json", json.dumps(summary, indent=2))  # atomic, never via a link


def _plan_for(name: str, config: Mapping[str, Any], sequential: bool | None) -> SeedPlan | None:
    """The sequential seed plan of a config (its ``seed_blocks``), or None for the fixed design."""
    blocks = config.get("seed_blocks")
    if sequential is False or (sequential is None and not blocks):
        return None
    if not blocks:
        raise ValueError(f"study {name!r} declares no seed_blocks: it cannot run sequentially")
    return SeedPlan(tuple(int(b) for b in blocks))


def _fixed_plan(config: Mapping[str, Any], split: bool) -> SeedPlan:
    """The one-look design of a fixed run (one half's seeds under split_half)."""
    n = int(config.get("seeds", 1))
    return SeedPlan.fixed(max(1, n // 2 if split else n))


def _check_measured(study: Study, measured: Any) -> None:
    """Refuse measurements of undeclared predictions and declared predictions left unmeasured."""
    if not isinstance(measured, Mapping):
        raise TypeError(
            f"study {study.name!r}: run must return (numbers, measured mapping), got {type(measured)}"
        )
    declared = {p.name: p for p in study.predictions}
    unknown = sorted(set(measured) - set(declared))
    if unknown:
        raise ValueError(
            f"study {study.name!r} measured undeclared predictions {unknown}; declare them first"
        )
    missing = [n for n in declared if n not in measured]
    if missing:
        raise ValueError(f"study {study.name!r} did not measure its predictions {missing}")


def _as_measurement(m: Any) -> Measurement:
    return m if isinstance(m, Measurement) else Measurement(list(m))


def _extend(acc: Measurement | None, m: Any) -> Measurement:
    """Append one block's per-seed values (and reasons, notes, censoring budgets) to those of earlier blocks."""
    m = _as_measurement(m)
    budget = (
        None
        if m.budget is None
        else list(m.budget)
        if isinstance(m.budget, (list, tuple))
        else [m.budget] * len(m.values)
    )
    if acc is None:
        return Measurement(list(m.values), m.evidence, m.inconclusive, budget)
    old_b = acc.budget
    if budget is not None or old_b is not None:
        old_b = list(old_b) if old_b is not None else [math.nan] * len(acc.values)
        budget = old_b + (budget if budget is not None else [math.nan] * len(m.values))
    reasons = "; ".join(dict.fromkeys(r for r in (acc.inconclusive, m.inconclusive) if r)) or None
    evidence = " | ".join(e for e in (acc.evidence, m.evidence) if e)
    return Measurement([*acc.values, *m.values], evidence, reasons, budget)


def _head(m: Any, n: int) -> Measurement:
    """The first ``n`` seeds of a measurement."""
    m = _as_measurement(m)
    b = list(m.budget)[:n] if isinstance(m.budget, (list, tuple)) else m.budget
    return Measurement(list(m.values)[:n], m.evidence, m.inconclusive, b)


def _execute(
    study: Study, ctx: StudyContext, config: dict[str, Any], plan: SeedPlan | None, offset: int = 0
) -> tuple[dict[str, Any], Any, Sequential | None]:
    """Run the study: once (fixed design) or block by block until its predictions are decided (sequential; the
    evaluation seeds start at ``offset``)."""
    if plan is None:
        numbers, measured = study.run(ctx, config)
        return numbers, measured, None
    seq = Sequential(study.predictions, plan)
    acc: dict[str, Measurement] = {}
    blocks: list[dict[str, Any]] = []
    numbers: dict[str, Any] = {}
    start = 0
    while not seq.done:
        n = int(seq.next_seeds or 0)
        ctx.undecided = seq.undecided()
        ctx.checks.clear()  # the checks and anchors of the last block are kept (its seeds are named below)
        ctx.anchors.clear()
        numbers, measured = study.run(ctx, {**config, "seeds": n - start, "seed_start": offset + start})
        _check_measured(study, measured)
        for p in study.predictions:
            acc[p.name] = _extend(acc.get(p.name), measured[p.name])
        left = seq.look({k: acc[k] for k in seq.undecided()})
        blocks.append({"seeds": [offset + start, offset + n - 1], "undecided_after": left})
        start = n
    ctx.undecided = None
    numbers = {
        **numbers,
        "sequential_blocks": blocks,
        "numbers_checks_anchors_from_seeds": blocks[-1]["seeds"],
    }
    return numbers, acc, seq


def _judge_all(
    study: Study,
    measured: Any,
    seq: Sequential | tuple[Sequential, Sequential] | None = None,
    split: bool = False,
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Judge each declared prediction (legacy studies return Claim lists), with Holm/BH verdicts beside the raw ones;
    under ``split`` the first half of the seeds is the verdict and each half is judged apart (the agreement): for a
    sequential plan each half is the whole plan run on seeds of its own (``seq`` is then the pair)."""
    if isinstance(measured, list) and all(isinstance(c, Claim) for c in measured):
        return adjust([{**c.to_dict(), "verdict": "holds" if c.holds else "fails"} for c in measured]), None
    _check_measured(study, measured)
    if isinstance(seq, tuple):
        first, second = (q.results() for q in seq)
        per = [
            {
                "name": a["name"],
                "seeds_per_half": a["seeds_used"],
                "seeds_used": [a["seeds_used"], b["seeds_used"]],
                "first": a["verdict"],
                "second": b["verdict"],
                "intervals": [a["interval"], b["interval"]],
                "agree": a["verdict"] == b["verdict"],
            }
            for a, b in zip(first, second)
        ]
        agree = sum(h["agree"] for h in per)
        halves = {"seeds_per_half": "sequential (each half its own plan)", "predictions": per, "agree": agree,
                  "agreement": agree / len(per) if per else math.nan}  # fmt: skip
        return adjust(first), halves
    if seq is not None:
        return adjust(seq.results()), None
    if not split:
        return adjust([judge(p, measured[p.name]) for p in study.predictions]), None
    per = [split_half(p, measured[p.name]) for p in study.predictions]
    claims = [judge(p, _head(measured[p.name], h["seeds_per_half"])) for p, h in zip(study.predictions, per)]
    agree = sum(h["agree"] for h in per)
    halves = {
        "seeds_per_half": per[0]["seeds_per_half"] if per else 0,
        "predictions": per,
        "agree": agree,
        "agreement": agree / len(per) if per else math.nan,
    }
    return adjust(claims), halves


def predictions_document(name: str) -> dict[str, Any]:
    """Study ``name``'s declared predictions with their version, hash and history (nothing runs)."""
    study = get(name)
    return {
        "study": name,
        "slide": study.slide,
        "preregistration": study.preregistration(),
        "quick_design": _design_text(study.quick),
        "full_design": _design_text(study.full),
        "predictions": [p.to_dict() for p in study.predictions],
    }


def _design_text(config: Mapping[str, Any]) -> str:
    plan = _plan_for("", config, None) if config.get("seed_blocks") else _fixed_plan(config, False)
    return plan.describe() if plan is not None else ""


class _StudyBar:
    """A rich progress bar counting a study's units of work (runs)."""

    def __init__(self, name: str, enabled: bool):
        self.enabled = enabled
        self.name = name
        self._progress: Any = None

    def __enter__(self) -> _StudyBar:
        if self.enabled:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn(f"[bold]study {self.name}"),
                BarColumn(bar_width=None),
                TextColumn("{task.completed} runs"),
                TimeElapsedColumn(),
            )
            self._progress.__enter__()
            self._task = self._progress.add_task(self.name, total=None)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(None, None, None)

    def advance(self, n: int = 1) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, n)


def _import_all() -> None:
    """Import every module of this package: each registers its study (one file per study)."""
    import importlib
    import pkgutil

    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")


_import_all()

__all__ = [
    "Anchor",
    "Check",
    "Claim",
    "Measurement",
    "Prediction",
    "Study",
    "StudyContext",
    "StudyResult",
    "Tuned",
    "available",
    "describe",
    "eval_seeds",
    "get",
    "judge",
    "predictions_document",
    "register",
    "run",
    "tune",
    "tuning_seeds",
]
