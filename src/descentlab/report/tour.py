"""``descentlab tour``: run every registered study (and a small benchmark) into one folder, then write the page.

Layout of the output folder: ``studies/<name>/`` (figures, summary.json, or failed.json when the study raised),
``bench/`` (leaderboard.md, profiles.png, curves), ``tour.db`` (the store of every run), ``index.html`` and
``.descentlab-tour.json``, the manifest of the files the tour wrote. A tour deletes or replaces only files its
manifest lists; where it would write over a file it did not write, it refuses unless ``force=True`` (``--force``),
and even then it deletes nothing it did not write. The first Ctrl-C or SIGTERM stops the tour: no study or run
starts after it, the page shows what ran, and the same command again reuses the runs in ``tour.db``.
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.markup import escape

from descentlab.report.formatting import format_estimate, seed_order
from descentlab.report.load import COMMAND_FILE, FAILED_FILE, claim_verdict
from descentlab.report.render import write_report
from descentlab.train.interrupt import Interrupted, _DeferredInterrupt, _RaisingInterrupt, signal_name

QUICK_BENCH: dict[str, Any] = {
    "algorithms": ["adamw", "sgd_nesterov"],
    "workloads": ["mnist1d_mlp", "logreg"],
    "tuning": "external",
    "trials": 3,
    "studies": 1,
}
"""The tour's benchmark: 2 algorithms x 2 fast workloads, one study of 3 Halton trials (12 trials, ~15-30 s)."""

FULL_BENCH: dict[str, Any] = {**QUICK_BENCH, "workloads": ["mnist1d_mlp", "logreg", "digits"], "trials": 5}
"""The benchmark of a full (non-quick) tour."""


@dataclass
class TourEntry:
    """What one step of the tour did: a study (or the benchmark), its status, time and claim verdicts.

    ``status`` is ``ok`` whatever the verdicts are; only a study that raised is ``failed``. ``failed_claims`` lists
    the claims that do not hold (``"fails: ..."`` or ``"inconclusive: ..."``, with their evidence)."""

    name: str
    status: str
    seconds: float
    claims_held: int = 0
    claims_total: int = 0
    error: str = ""
    note: str = ""
    failed_claims: list[str] = field(default_factory=list)
    claims_failed: int = 0
    claims_inconclusive: int = 0
    checks_passed: int = 0
    checks_total: int = 0
    signum: int = 0
    """The signal that interrupted it (``status`` "interrupted"), else 0."""

    @property
    def all_hold(self) -> bool:
        """Whether every claim holds (True for a step without claims)."""
        return self.claims_held == self.claims_total

    def tally(self) -> str:
        """``"H hold · F fail · I inconclusive"``."""
        held, fails, open_ = self.claims_held, self.claims_failed, self.claims_inconclusive
        return f"{held} hold · {fails} fail · {open_} inconclusive"


@dataclass
class TourResult:
    """The tour's page, its per-study entries and the total wall time."""

    page: Path
    entries: list[TourEntry] = field(default_factory=list)
    seconds: float = 0.0
    multiplicity: dict[str, Any] | None = None
    """Holm and Benjamini-Hochberg counts over every claim of the tour, raw beside (None without p-values)."""
    split_half: dict[str, Any] | None = None
    """Under ``split_half``: per study, how many predictions got the same verdict on both halves of the seeds."""


def _parse_names(names: str | list[str] | None) -> list[str]:
    if names is None:
        return []
    items = names.split(",") if isinstance(names, str) else [x for n in names for x in str(n).split(",")]
    return [x.strip() for x in items if x.strip()]


def select_studies(only: str | list[str] | None = None, skip: str | list[str] | None = None) -> list[str]:
    """The registered studies to run, in lecture order (by seed number): ``only`` (comma-separated or a list)
    restricts, ``skip`` removes; unknown names are a ValueError listing the allowed ones."""
    from descentlab import studies

    allowed = studies.available()
    want, drop = _parse_names(only), _parse_names(skip)
    if only is not None and not want:
        raise ValueError(
            f"--only {only!r} names no study; give comma-separated study names or leave --only out"
        )
    unknown = sorted({n for n in want + drop if n not in allowed})
    if unknown:
        raise ValueError(f"unknown study {', '.join(map(repr, unknown))}; available: {', '.join(allowed)}")
    names = [
        n
        for n in allowed
        if (n in want if want else getattr(studies.get(n), "in_tour", True)) and n not in drop
    ]
    if not names:
        raise ValueError("no study left to run after --only/--skip")
    return sorted(names, key=lambda n: (seed_order(studies.get(n).slide), n))


def _run_bench(out: Path, store: Any, quick: bool, progress: bool) -> str:
    """Run the tour's benchmark into ``store`` and write its report into ``out``; returns a line with the scores."""
    from descentlab.bench import run_benchmark
    from descentlab.bench.report import write_report as bench_report

    cfg = QUICK_BENCH if quick else FULL_BENCH
    result = run_benchmark(
        cfg["algorithms"],
        cfg["workloads"],
        tuning=cfg["tuning"],
        trials=cfg["trials"],
        studies=cfg["studies"],
        store=store,
        progress=progress,
    )
    bench_report(result, out)
    opts = (f"-a {','.join(cfg['algorithms'])} -w {','.join(cfg['workloads'])} --tuning {cfg['tuning']} "
            f"--trials {cfg['trials']} --studies {cfg['studies']} --store {out.parent / 'tour.db'}")  # fmt: skip
    (out / COMMAND_FILE).write_text(
        f"descentlab bench run {opts}\ndescentlab bench report {opts} --out {out}\n"
    )
    return _bench_line(result)


def _bench_line(result: Any) -> str:
    """What the tour's small board can conclude: its protocol, the separated pairs (or "not separated") and its
    minimum detectable effect (or why there is none), never a rank its studies cannot support."""
    from descentlab.bench.board import board_report

    rep = board_report(result, n_boot=2000, splits=40)
    bd, checks = rep["board"], rep["checks"]
    proto = f"{len(bd.algorithms)} entrants x {len(bd.workloads)} workloads x {bd.studies} studies x {bd.trials} trials"
    sep = [f"{p['faster']} faster than {p['slower']} (x{p['ratio']:.2f})" for p in bd.pairs if p["separated"]]
    verdict = "; ".join(sep) if sep else "not separated"
    if checks is None:
        mde = f"no minimum detectable effect at {bd.studies} studies (6 needed)"
    elif checks["mde"] is None:
        mde = "minimum detectable effect beyond x0.5"
    else:
        mde = f"minimum detectable effect x{checks['mde']:.2f}"
    return f"{proto}: {verdict}; {mde}"


MANIFEST = ".descentlab-tour.json"
"""The file in a tour's folder that lists (relative paths) every file the tour wrote there."""


def _files(folder: Path) -> dict[str, float]:
    """Every regular file under ``folder`` (links not followed) -> its modification time, by relative path."""
    out: dict[str, float] = {}
    if not folder.is_dir():
        return out
    for root, _dirs, names in os.walk(folder):
        for n in names:
            p = Path(root) / n
            if p.is_file() and not p.is_symlink():
                out[p.relative_to(folder).as_posix()] = p.stat().st_mtime
    return out


def _read_manifest(out_dir: Path) -> set[str]:
    """The files an earlier tour wrote into ``out_dir`` (empty when there is no readable manifest)."""
    try:
        data = json.loads((out_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return set()
    files = data.get("files") if isinstance(data, dict) else None
    return {f for f in files if isinstance(f, str)} if isinstance(files, list) else set()


def _write_manifest(out_dir: Path, before: dict[str, float], ours: set[str]) -> None:
    """Record the files this tour wrote (new or changed since ``before``) plus the earlier tours' still there."""
    now = _files(out_dir)
    mine = {f for f, t in now.items() if f not in before or before[f] != t} | (ours & set(now))
    mine.discard(MANIFEST)
    tmp = out_dir / f".{MANIFEST}.tmp{os.getpid()}"
    tmp.write_text(json.dumps({"files": sorted(mine)}, indent=1))
    os.replace(tmp, out_dir / MANIFEST)


def _targets(names: list[str], bench: bool) -> list[str]:
    """The folders (with a trailing slash) and files a tour of ``names`` writes or clears."""
    return ["index.html", "tour.db", *[f"studies/{n}/" for n in names], *(["bench/"] if bench else [])]


def _check_ownership(out_dir: Path, names: list[str], bench: bool, ours: set[str], force: bool) -> None:
    """Refuse (ValueError naming the file) to write where a file the tour did not write would be replaced or mixed
    with its outputs, unless ``force``."""
    existing = _files(out_dir)
    if "tour.db" in ours:  # SQLite's companions of the tour's own store come and go with it
        ours = ours | {f"tour.db{x}" for x in ("-wal", "-shm", "-journal")}
    foreign = [
        f
        for t in _targets(names, bench)
        for f in sorted(existing)
        if (f == t or f.startswith(t) or (t == "tour.db" and f.startswith("tour.db-"))) and f not in ours
    ]
    if foreign and not force:
        more = f" (and {len(foreign) - 1} more)" if len(foreign) > 1 else ""
        raise ValueError(
            f"--out {str(out_dir)!r} holds {foreign[0]!r}{more}, which no earlier tour wrote there; the tour would "
            "replace it or mix its outputs with it: choose another folder, or pass --force (files it did not write "
            "are never deleted)"
        )


RESULT_FILES = ("summary.json", FAILED_FILE, "predictions.json")
"""What a study folder's page section is read from: with ``force``, such a file the tour did not write is replaced
too (an old summary must not stand for this tour's run)."""


def _clear_ours(folder: Path, out_dir: Path, ours: set[str], force: bool = False) -> None:
    """Delete the files an earlier tour wrote under ``folder`` (and folders left empty); with ``force`` also the
    result files (:data:`RESULT_FILES`) at its top; nothing else."""
    if not folder.is_dir():
        return
    if force:
        ours = ours | {(folder / n).relative_to(out_dir).as_posix() for n in RESULT_FILES}
    for rel in sorted(ours):
        p = out_dir / rel
        try:
            p.relative_to(folder)
        except ValueError:
            continue
        if p.is_file() and not p.is_symlink():
            p.unlink()
    for root, _dirs, _names in sorted(os.walk(folder), key=lambda x: -len(x[0])):
        if Path(root) != folder and not os.listdir(root):
            os.rmdir(root)


def _fresh_folder(
    out_dir: Path,
    name: str,
    ours: set[str] = frozenset(),
    force: bool = False,  # type: ignore[assignment]
) -> Path:
    """``<out>/studies/<name>`` without an earlier tour's files: its stale figures or summaries must not show up
    (files the tour did not write stay)."""
    folder = out_dir / "studies" / name
    _clear_ours(folder, out_dir, ours, force)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _run_study(
    name: str, quick: bool, folder: Path, store: Any, progress: bool, **overrides: Any
) -> TourEntry:
    """Run one study into ``folder``; an exception or Ctrl-C becomes a failed / interrupted entry and failed.json."""
    from descentlab import studies

    t0 = time.perf_counter()
    try:
        res = studies.run(name, quick=quick, out=folder, store=store, progress=progress, **overrides)
    except KeyboardInterrupt as exc:  # keep what ran: the page is still written, then the interrupt goes on
        secs = time.perf_counter() - t0
        err = f"interrupted ({signal_name(getattr(exc, 'signum', None))}); nothing judged"
        (folder / FAILED_FILE).write_text(
            json.dumps({"study": name, "error": err, "seconds": round(secs, 2)})
        )
        signum = getattr(exc, "signum", None) or signal.SIGINT
        return TourEntry(name, "interrupted", secs, error=err, signum=signum)
    except Exception as exc:  # a broken study must not stop the tour
        secs = time.perf_counter() - t0
        err = f"{type(exc).__name__}: {exc}"
        tb = traceback.format_exc(limit=4)
        (folder / FAILED_FILE).write_text(
            json.dumps({"study": name, "error": f"{err}\n\n{tb}", "seconds": round(secs, 2)}, indent=2)
        )
        return TourEntry(name, "failed", secs, error=err)
    secs = time.perf_counter() - t0
    return _study_entry(name, secs, res.summary if isinstance(getattr(res, "summary", None), dict) else {})


def _study_entry(name: str, seconds: float, summary: dict[str, Any]) -> TourEntry:
    """The tour entry of a study that ran: its claims counted by verdict (checks apart, never claims)."""
    claims = [c for c in summary.get("claims") or [] if isinstance(c, dict)]
    checks = [c for c in summary.get("checks") or [] if isinstance(c, dict)]
    verdicts = [claim_verdict(c) for c in claims]
    misses = [
        f"{v}: {c.get('claim', '')} ({c.get('evidence', '')})"
        for c, v in zip(claims, verdicts)
        if v != "holds"
    ]
    return TourEntry(
        name,
        "ok",
        seconds,
        claims_held=verdicts.count("holds"),
        claims_total=len(claims),
        failed_claims=misses,
        claims_failed=verdicts.count("fails"),
        claims_inconclusive=verdicts.count("inconclusive"),
        checks_passed=sum(bool(c.get("passed")) for c in checks),
        checks_total=len(checks),
    )


def _bench_entry(
    out_dir: Path,
    store: Any,
    quick: bool,
    progress: bool,
    ours: set[str] = frozenset(),  # type: ignore[assignment]
) -> TourEntry:
    """Run the tour's benchmark into ``<out>/bench`` (an earlier tour's files there removed first); failures and
    Ctrl-C become its entry."""
    bench_dir = out_dir / "bench"
    _clear_ours(bench_dir, out_dir, ours)
    bench_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        note = _run_bench(bench_dir, store, quick, progress)
        return TourEntry("benchmark", "ok", time.perf_counter() - t0, note=note)
    except KeyboardInterrupt:
        (bench_dir / FAILED_FILE).write_text(json.dumps({"error": "interrupted (Ctrl-C)"}))
        return TourEntry("benchmark", "interrupted", time.perf_counter() - t0, error="interrupted (Ctrl-C)")
    except Exception as exc:
        err = f"{type(exc).__name__}: {exc}"
        (bench_dir / FAILED_FILE).write_text(json.dumps({"error": err}))
        return TourEntry("benchmark", "failed", time.perf_counter() - t0, error=err)


def _entry_line(e: TourEntry) -> str:
    """The result line printed when a study (or the benchmark) ends."""
    if e.status == "interrupted":
        return f"    [red]✗ {escape(e.name)} interrupted[/red] after {e.seconds:.1f} s; writing the page with what ran"
    if e.status == "failed":
        return f"    [red]✗ {escape(e.name)} failed[/red] after {e.seconds:.1f} s: {escape(e.error)}"
    if e.name == "benchmark":
        return f"    [green]✓ {escape(e.note)}[/green] · {e.seconds:.1f} s"
    colour = "green" if e.all_hold else "yellow"
    return f"    [{colour}]✓ {escape(e.name)}: {e.tally()}[/{colour}] · {e.seconds:.1f} s"


AUTO_JOBS_MAX = 4
"""``descentlab tour`` without ``--jobs`` runs one study per usable core, at most this many (each worker process
holds its own torch and data: ~0.5-1.5 GB)."""


def auto_jobs() -> int:
    """How many studies ``descentlab tour`` runs at once by default: one per usable core, at most AUTO_JOBS_MAX."""
    from descentlab.bench.executors import usable_cores

    return max(1, min(AUTO_JOBS_MAX, usable_cores()))


BENCH_SECONDS = (44.0, 100.0)
"""Measured (quick, full) wall seconds of the tour's benchmark on the reference 2-core CPU (for ``--jobs``)."""


_WORKER_STOPPING = False
"""In a tour's worker process: True once a study there was interrupted (the pool may have queued it more jobs)."""


def _tour_job(job: tuple[Any, ...]) -> TourEntry:
    """One unit of a parallel tour, run in a worker process: a study (``kind`` "study") or the benchmark.

    The worker opens the tour's store itself (SQLite WAL, several writers wait for each other) and caps a
    study's own ``threads`` setting at the worker's share of the cores."""
    from descentlab.train import interrupt

    grace = interrupt.REPEAT_GRACE_S
    interrupt.REPEAT_GRACE_S = 2.0  # Ctrl-C reaches a worker from the terminal and from the driver: one stop
    try:
        return _tour_job_here(job)
    finally:
        interrupt.REPEAT_GRACE_S = grace


def _tour_job_here(job: tuple[Any, ...]) -> TourEntry:
    """:func:`_tour_job` itself."""
    global _WORKER_STOPPING
    from descentlab import studies
    from descentlab.store import Store

    kind, name, quick, out, store_path, threads, *rest = job  # rest: (split_half,)
    split = bool(rest and rest[0])
    out_dir = Path(out)
    if _WORKER_STOPPING:  # a job queued to this worker before the tour stopped: never started
        folder = out_dir / ("bench" if kind == "bench" else f"studies/{name}")
        folder.mkdir(parents=True, exist_ok=True)
        err = "not started: the tour was stopping"
        (folder / FAILED_FILE).write_text(json.dumps({"study": name, "error": err}))
        return TourEntry("benchmark" if kind == "bench" else name, "interrupted", 0.0, error=err)
    with Store(store_path) as store:  # the driver cleared the earlier tour's files before it started the pool
        if kind == "bench":
            entry = _bench_entry(out_dir, store, quick, False)
        else:
            cfg = studies.get(name).quick if quick else studies.get(name).full
            own = cfg.get("threads") if isinstance(cfg, dict) else None
            overrides = {"threads": threads} if isinstance(own, int) and (own <= 0 or own > threads) else {}
            overrides.update({"split_half": True} if split else {})
            entry = _run_study(name, quick, _fresh_folder(out_dir, name), store, False, **overrides)
    if entry.status == "interrupted":  # the pool is going down: a second signal must not cut the way back
        _WORKER_STOPPING = True  # and jobs already queued to this worker must not start
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    return entry


def _job_cost(name: str, quick: bool) -> float:
    """Expected seconds of a study (or "benchmark"); unknown costs come first (they might be long)."""
    from descentlab import studies

    if name == "benchmark":
        return BENCH_SECONDS[0 if quick else 1]
    secs = getattr(studies.get(name), "seconds", None)
    return math.inf if not secs else float(secs[0 if quick else 1])


def _run_parallel(
    names: list[str],
    out_dir: Path,
    store_path: Path,
    quick: bool,
    bench: bool,
    jobs: int,
    bar: _TourBar,
    entries: list[TourEntry],
    folders: list[Path],
    ours: set[str] = frozenset(),  # type: ignore[assignment]
    force: bool = False,
    split_half: bool = False,
) -> int:
    """Run the studies (and the benchmark) in ``jobs`` worker processes, longest first; fill ``entries`` and
    ``folders`` in lecture order. Returns the signal that interrupted the tour (0 if none). The first Ctrl-C or
    SIGTERM here cancels the studies not started and passes the signal on to the running ones, which stop at their
    next step boundary."""
    global _WORKER_STOPPING
    from descentlab.bench.executors import ProcessExecutor

    # workers are fresh processes; a pool run in this process (tests) starts clean too
    _WORKER_STOPPING = False

    todo = names + (["benchmark"] if bench else [])
    order = sorted(todo, key=lambda n: -_job_cost(n, quick))
    pool = ProcessExecutor(jobs)
    work = [("bench" if n == "benchmark" else "study", n, quick, str(out_dir), str(store_path), pool.threads,
             split_half) for n in order]  # fmt: skip
    for n in names:  # stale outputs of an earlier tour go now; a study not reached must not show old results
        _clear_ours(out_dir / "studies" / n, out_dir, ours, force)
    if bench:
        _clear_ours(out_dir / "bench", out_dir, ours)
    bar.say(f"[bold]{len(todo)} jobs[/bold] in {jobs} processes ({pool.threads} torch thread(s) each), "
            f"longest first: {escape(', '.join(order))}")  # fmt: skip
    bar.step(f"{jobs} at once")
    done: dict[str, TourEntry] = {}
    interrupted, broken = 0, ""
    try:
        with _RaisingInterrupt():  # SIGTERM too: raise here, the pool passes it on to the running studies
            for entry in pool.map(_tour_job, work):
                done[entry.name] = entry
                bar.say(_entry_line(entry))
                bar.advance()
                if entry.status == "interrupted":
                    interrupted = interrupted or entry.signum or signal.SIGINT
    except KeyboardInterrupt as exc:
        interrupted = getattr(exc, "signum", None) or signal.SIGINT
    except Exception as exc:  # a worker died (BrokenProcessPool: killed, out of memory) or could not start
        broken = f"the tour's worker processes failed: {type(exc).__name__}: {exc}"
        bar.say(f"    [red]✗ {escape(broken)}[/red]")
    for n in todo:  # what an interrupt or a dead worker left: a started study wrote a summary or failed.json
        folder = out_dir / ("bench" if n == "benchmark" else f"studies/{n}")
        started = (folder / "summary.json").is_file() or (folder / FAILED_FILE).is_file()
        if n not in done and (started or broken):
            err = f"interrupted ({signal_name(interrupted or None)}); nothing judged"
            status, err = ("failed", broken) if broken else ("interrupted", err)
            done[n] = TourEntry(n, status, 0.0, error=err)
            folder.mkdir(parents=True, exist_ok=True)
            if not (folder / FAILED_FILE).exists() and not (folder / "summary.json").exists():
                (folder / FAILED_FILE).write_text(json.dumps({"study": n, "error": err}))
        if n in done:
            entries.append(done[n])
            if n != "benchmark":
                folders.append(folder)
    return interrupted


def run_tour(
    out: str | Path = "runs/tour",
    quick: bool = True,
    bench: bool = True,
    only: str | list[str] | None = None,
    skip: str | list[str] | None = None,
    console: Any = None,
    progress: bool = True,
    jobs: int = 1,
    force: bool = False,
    split_half: bool = False,
) -> TourResult:
    """Run the selected studies (quick or full variants) and, if ``bench``, the small benchmark, all into one store
    ``<out>/tour.db``; a study that raises is recorded as failed and the tour goes on. Writes ``<out>/index.html``.

    ``jobs`` > 1 runs that many studies at once in spawned processes (torch threads = cores // jobs each, longest
    studies first by their measured ``Study.seconds``); the page and the entries keep lecture order.

    Only files an earlier tour wrote (``.descentlab-tour.json``) are deleted or replaced; a file it did not write
    where the tour writes (``index.html``, ``tour.db``, ``studies/<name>/``, ``bench/`` unless ``bench=False``) is a
    ValueError unless ``force`` (then it is written over or left beside, never deleted). The first Ctrl-C or SIGTERM
    stops the tour (no study starts after it; the page shows what ran) and raises
    :class:`~descentlab.train.interrupt.Interrupted`; the same call again reuses the runs in ``tour.db``.

    ``split_half`` runs every study on twice its seeds and judges each prediction again on the second half
    (``TourResult.split_half`` has the agreement); ``TourResult.multiplicity`` has the Holm-adjusted counts."""
    from descentlab import studies
    from descentlab.store import Store

    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a positive integer, got {jobs!r}")
    names = select_studies(only, skip)
    out_dir = Path(out)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out {str(out_dir)!r} is a file; give a folder")
    bench_note = ""
    if bench:
        try:
            import descentlab.bench  # noqa: F401
        except ImportError as exc:  # the benchmark package is optional for the page
            bench, bench_note = False, f"not importable: {exc}"
    ours = _read_manifest(out_dir)
    _check_ownership(out_dir, names, bench, ours, force)
    out_dir.mkdir(parents=True, exist_ok=True)
    before = _files(out_dir)
    t_start = time.perf_counter()
    entries: list[TourEntry] = []
    folders: list[Path] = []
    bench_dir: Path | None = None
    interrupted = 0
    with (
        _TourBar(len(names) + int(bench), console, progress) as bar,
        Store(out_dir / "tour.db") as store,
        _DeferredInterrupt() as stop,  # a signal between studies stops the tour too
    ):
        say = bar.say
        if jobs > 1:
            ran_bench = bench
            interrupted = _run_parallel(
                names, out_dir, store.path, quick, bench, jobs, bar, entries, folders, ours, force, split_half
            )
            bench = False  # ran in the pool (its entry is in `entries`)
            bench_dir = out_dir / "bench" if ran_bench and (out_dir / "bench").is_dir() else None
        for i, name in enumerate(names if jobs == 1 else [], 1):
            if stop.pending:
                break
            folder = _fresh_folder(out_dir, name, ours, force)
            folders.append(folder)
            bar.step(name)
            say(f"[bold][{i}/{len(names)}][/bold] {escape(name)}: {escape(studies.get(name).description)}")
            entry = _run_study(
                name, quick, folder, store, progress, **({"split_half": True} if split_half else {})
            )
            entries.append(entry)
            say(_entry_line(entry))
            if entry.status == "interrupted":
                interrupted = entry.signum or signal.SIGINT
                break
            bar.advance()
        interrupted = interrupted or (stop.signum if stop.pending else 0) or 0
        if bench_note:
            entries.append(TourEntry("benchmark", "skipped", 0.0, note=bench_note))
            say(f"[yellow]benchmark skipped[/yellow]: descentlab.bench is {escape(bench_note)}")
        if bench and not interrupted:
            cfg = QUICK_BENCH if quick else FULL_BENCH
            bar.step("benchmark")
            say(f"[bold]benchmark[/bold]: {' vs '.join(cfg['algorithms'])} on {', '.join(cfg['workloads'])} "
                f"({cfg['tuning']} tuning, {cfg['trials']} trials; AlgoPerf rules)")  # fmt: skip
            entry = _bench_entry(out_dir, store, quick, progress, ours)
            entries.append(entry)
            say(_entry_line(entry))
            bench_dir = out_dir / "bench"
            interrupted = (stop.signum or signal.SIGINT) if entry.status == "interrupted" else 0
            bar.advance()
        stop.hold = True  # writing the page: later signals are only noted
        interrupted = interrupted or (stop.signum if stop.pending else 0) or 0  # also one the benchmark held
    try:
        page = write_report(out_dir, folders, bench=bench_dir, store=out_dir / "tour.db")
    finally:
        _write_manifest(out_dir, before, ours)
    if interrupted:
        if console is not None:
            console.print(
                f"interrupted; the page of what ran: {page.resolve()}", markup=False, highlight=False
            )
        raise Interrupted(interrupted, f"tour interrupted ({signal_name(interrupted)})")
    mult, halves = _tour_judging(folders)
    return TourResult(page=page, entries=entries, seconds=time.perf_counter() - t_start, multiplicity=mult,
                      split_half=halves if split_half else None)  # fmt: skip


def _tour_judging(folders: list[Path]) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """Holm/BH over the tour's claims (None when no claim has a p-value) and each study's split-half agreement."""
    from descentlab.report.load import load_study
    from descentlab.report.render import tour_adjustment

    sections = [load_study(f) for f in folders]
    mult = tour_adjustment(sections)
    halves: dict[str, Any] = {}
    for sec in sections:
        sh = (sec.summary or {}).get("split_half")
        if isinstance(sh, dict) and isinstance(sh.get("predictions"), list):
            halves[sec.name] = {"agree": int(sh.get("agree", 0)), "of": len(sh["predictions"]),
                                "seeds_per_half": sh.get("seeds_per_half")}  # fmt: skip
    if halves:
        agree, total = sum(h["agree"] for h in halves.values()), sum(h["of"] for h in halves.values())
        halves["total"] = {"agree": agree, "of": total, "agreement": agree / total if total else math.nan}
    mult.pop("per_study", None)
    return (mult if mult["with_p"] else None), halves


class _TourBar:
    """The tour's overall progress bar (one unit per study and one for the benchmark), shown above each study's
    own bar; with ``enabled=False`` only the result lines are printed (when a console is given)."""

    def __init__(self, total: int, console: Any, enabled: bool):
        self.total, self.console, self.enabled = total, console, enabled
        self._progress: Any = None

    def __enter__(self) -> _TourBar:
        if self.enabled:
            from rich import get_console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("[bold cyan]tour"),
                BarColumn(bar_width=30),
                MofNCompleteColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=self.console if self.console is not None else get_console(),
            )
            self._progress.__enter__()
            self._task = self._progress.add_task("", total=self.total)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(None, None, None)

    def say(self, text: str) -> None:
        """Print a result line (above the live bars when they are shown)."""
        if self._progress is not None:
            self._progress.console.print(text, highlight=False)
        elif self.console is not None:
            self.console.print(text, highlight=False)

    def step(self, what: str) -> None:
        """Name what runs now."""
        if self._progress is not None:
            self._progress.update(self._task, description=what)

    def advance(self) -> None:
        """One more step done."""
        if self._progress is not None:
            self._progress.advance(self._task)


def summary_table(result: TourResult) -> Any:
    """A rich Table of the tour: what ran, its seconds and its claims (hold · fail · inconclusive; checks apart)."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"tour · {result.seconds:.0f} s")
    table.add_column("step")
    table.add_column("status")
    table.add_column("seconds", justify="right")
    table.add_column("claims: hold · fail · inconclusive / result", justify="right")
    for e in result.entries:
        status = {
            "ok": "[green]ok[/green]",
            "skipped": "[yellow]skipped[/yellow]",
            "interrupted": "[red]interrupted[/red]",
        }.get(e.status, "[red]failed[/red]")
        if e.claims_total:
            claims = Text(f"{e.claims_held} · {e.claims_failed} · {e.claims_inconclusive}",
                          style="" if e.all_hold else "yellow")  # fmt: skip
        else:
            claims = Text((e.note or "—")[:60] if e.status != "failed" else e.error[:60])
        table.add_row(Text(e.name), status, f"{e.seconds:.1f}", claims)
    held = sum(e.claims_held for e in result.entries)
    fails = sum(e.claims_failed for e in result.entries)
    open_ = sum(e.claims_inconclusive for e in result.entries)
    raw = f"{held} hold · {fails} fail · {open_} inconclusive"
    m = result.multiplicity
    if m:  # the headline is Holm-adjusted over the whole tour, the raw counts beside it
        h, b = m["holm"], m["fdr_bh"]
        table.add_row(
            Text("total, Holm-adjusted over the tour", style="bold"),
            "",
            f"{result.seconds:.1f}",
            Text(f"{h['holds']} hold · {h['fails']} fail · {h['inconclusive']} inconclusive", style="bold"),
        )
        table.add_row(Text("raw (each claim alone)"), "", "", Text(raw))
        table.add_row(Text("Benjamini-Hochberg (tour)"), "", "",
                      Text(f"{b['holds']} hold · {b['fails']} fail · {b['inconclusive']} inconclusive"))  # fmt: skip
    else:
        table.add_row(Text("total", style="bold"), "", f"{result.seconds:.1f}", Text(raw, style="bold"))
    sh = (result.split_half or {}).get("total")
    if sh:
        table.add_row(
            Text("split halves agree"),
            "",
            "",
            Text(f"{sh['agree']} of {sh['of']} ({100 * sh['agreement']:.0f} %)"),
        )
    return table


def verdict_rows(out_dir: str | Path) -> list[dict[str, Any]]:
    """Every prediction judged in a tour (or study) folder: its study, version, prediction, estimate and interval,
    seeds used, the raw verdict, Holm and Benjamini-Hochberg over all of them as one family, and the split halves'
    verdicts where the tour ran with ``--split-half``. Reads ``<out_dir>/studies/*/summary.json`` (lecture order)."""
    from descentlab.studies.claims import ALPHA, adjust

    root = Path(out_dir)
    if not (root / "studies").is_dir():
        raise ValueError(f"{root} holds no studies/ folder: give the --out folder of a `descentlab tour`")
    found = {p.parent.name: p for p in (root / "studies").glob("*/summary.json")}
    try:
        order = select_studies(list(found))
    except ValueError:  # a folder of studies that are not registered here: alphabetical
        order = sorted(found)
    owners: list[tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None]] = []
    for name in order:
        summary = json.loads(found[name].read_text())
        halves = {h["name"]: h for h in (summary.get("split_half") or {}).get("predictions", [])}
        owners += [(summary, c, halves.get(c.get("name"))) for c in summary.get("claims", [])]
    adjusted = adjust([c for _, c, _ in owners], alpha=ALPHA)
    rows = []
    for (summary, c, half), a in zip(owners, adjusted):
        rows.append({
            "study": summary.get("study"), "name": c.get("name"), "version": c.get("version", 1),
            "predicted": c.get("predicted", ""), "estimate": c.get("mean"), "interval": c.get("interval"),
            "scale": c.get("scale"),
            "seeds_used": c.get("seeds_used", c.get("n")), "verdict": c.get("verdict"),
            "holm": a["adjusted"]["holm"] if "adjusted" in a else c.get("verdict"),
            "fdr_bh": a["adjusted"]["fdr_bh"] if "adjusted" in a else c.get("verdict"),
            "halves": None if half is None else [half["first"], half["second"]],
        })  # fmt: skip
    return rows


def verdicts_markdown(out_dir: str | Path) -> str:
    """:func:`verdict_rows` as a markdown table with the counts (raw, Holm, BH, split-half agreement) below it."""

    def num(x: Any) -> str:
        try:
            return f"{float(x):.3g}"
        except (TypeError, ValueError):
            return "—"

    rows = verdict_rows(out_dir)
    halves = any(r["halves"] for r in rows)
    head = "| study | prediction | predicted | estimate [interval] | seeds | raw | Holm (all) | BH (all) |"
    lines = [head + (" halves (1st / 2nd) |" if halves else ""), "|---" * (8 + halves) + "|"]
    for r in rows:
        lo, hi = (r["interval"] or [None, None])[:2]
        shown = (
            format_estimate(r["estimate"], [lo, hi], "log").replace(" (geometric mean)", " (geo.)")
            if r.get("scale") == "log"
            else f"{num(r['estimate'])} [{num(lo)}, {num(hi)}]"
        )
        cells = [r["study"], f"`{r['name']}` v{r['version']}", r["predicted"], shown, str(r["seeds_used"]),
                 r["verdict"], r["holm"], r["fdr_bh"]]  # fmt: skip
        if halves:
            cells.append(" / ".join(r["halves"]) if r["halves"] else "—")
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")

    def count(key: str) -> str:
        return " / ".join(str(sum(r[key] == v for r in rows)) for v in ("holds", "fails", "inconclusive"))

    lines.append("")
    lines.append(f"{len(rows)} predictions, hold / fail / inconclusive: raw {count('verdict')}; Holm over all "
                 f"{count('holm')}; Benjamini-Hochberg over all {count('fdr_bh')}.")  # fmt: skip
    if halves:
        judged = [r for r in rows if r["halves"]]
        agree = sum(r["halves"][0] == r["halves"][1] for r in judged)
        lines.append(f"Split halves: {agree} of {len(judged)} predictions got the same verdict on both halves "
                     f"({100 * agree / max(1, len(judged)):.0f} %).")  # fmt: skip
    return "\n".join(lines) + "\n"
