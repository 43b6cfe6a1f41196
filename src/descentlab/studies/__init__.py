"""Studies: one command per phenomenon from the lectures, with its figure and computed claims.

A study is a small module in this package that registers a :class:`Study` (name, seed slide, quick and full
configurations, and a ``run(ctx, config)`` function). ``run(name, quick=False, **overrides)`` executes it through
``train()`` and the store, writes figures (PNG and SVG) and ``summary.json`` to the output folder, and returns a
:class:`StudyResult`.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from descentlab._registry import Registry
from descentlab.store import Run, Store

_REGISTRY = Registry("study")


@dataclass
class Claim:
    """A sentence from the lecture and whether the measured numbers back it."""

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
    run: Callable[[StudyContext, dict[str, Any]], tuple[dict[str, Any], list[Claim]]]
    seconds: tuple[float, float] | None = None
    """Measured (quick, full) wall seconds on the reference 2-core CPU, or None; ``tour --jobs`` starts the longest
    studies first."""


@dataclass
class StudyResult:
    """What a study produced: ``summary`` (the dict written to summary.json) and ``figures`` (paths)."""

    name: str
    summary: dict[str, Any]
    figures: list[Path]
    out: Path

    @property
    def claims(self) -> list[dict[str, Any]]:
        """The checked claims."""
        return list(self.summary["claims"])

    @property
    def all_hold(self) -> bool:
        """Whether every claim holds."""
        return all(c["holds"] for c in self.summary["claims"])


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
    _n: int = 0

    def train(self, task: Any, **kw: Any) -> Run:
        """``descentlab.train`` with this study's store; the run id is ``<study>-<n>`` and progress is tracked."""
        from descentlab.train import train

        self._n += 1
        kw.setdefault("progress", False)
        kw.setdefault("run_id", f"{self.name}-{time.strftime('%Y%m%d-%H%M%S')}-{self._n:03d}")
        run = train(task, store=self.store if self.store is not None else False, **kw)
        self.runs.append(run.id)
        self.advance()
        return run

    def advance(self, n: int = 1) -> None:
        """Advance the study's progress bar by ``n`` units of work."""
        if self.progress is not None:
            self.progress.advance(n)

    def save_figure(self, fig: Any, stem: str) -> Path:
        """Save a matplotlib figure as ``<out>/<stem>.png`` and ``.svg``; returns the PNG path."""
        import matplotlib.pyplot as plt

        png = self.out / f"{stem}.png"
        fig.savefig(png, dpi=120, bbox_inches="tight")
        fig.savefig(self.out / f"{stem}.svg", bbox_inches="tight")
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
    **overrides: Any,
) -> StudyResult:
    """Run study ``name`` (its quick or full grid, with ``overrides``) and write figures and summary.json.

    Output goes to ``out`` (default ``runs/studies/<name>/``); runs go to ``store``: None or True -> the default
    store, False -> no store (the runs are not kept), or a path / Store.
    """
    import matplotlib

    matplotlib.use("Agg")
    study = get(name)
    config = dict(study.quick if quick else study.full)
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
        elif isinstance(base, (int, float)) and not isinstance(v, (int, float)):
            raise ValueError(f"study {name!r}: setting {k!r} must be a number, got {v!r}")
        else:
            config[k] = type(base)(v) if isinstance(base, (int, float)) else v
    if seeds is not None:
        if seeds < 1:
            raise ValueError(f"seeds must be >= 1, got {seeds}")
        config["seeds"] = int(seeds)
    out_dir = Path(out) if out is not None else Path("runs/studies") / name
    out_dir.mkdir(parents=True, exist_ok=True)
    if not (store is None or isinstance(store, (Store, str, os.PathLike, bool))):
        raise TypeError(f"store must be a path, a Store, None or False, got {type(store).__name__} {store!r}")
    own = not isinstance(store, Store) and store is not False
    st = store if isinstance(store, Store) else None if store is False else Store(None if store is True else store)
    t0 = time.perf_counter()
    bar = _StudyBar(name, enabled=progress)
    ctx = StudyContext(name=name, out=out_dir, store=st, quick=quick, progress=bar)
    try:
        with bar:
            numbers, claims = study.run(ctx, config)
    finally:
        if own and st is not None:
            st.close()
    summary = {
        "study": name,
        "slide": study.slide,
        "quick": quick,
        "config": _clean(config),
        "numbers": _clean(numbers),
        "claims": [c.to_dict() for c in claims],
        "figures": [p.name for p in ctx.figures],
        "runs": ctx.runs,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return StudyResult(name=name, summary=summary, figures=list(ctx.figures), out=out_dir)


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

__all__ = ["Claim", "Study", "StudyContext", "StudyResult", "available", "describe", "get", "register", "run"]
