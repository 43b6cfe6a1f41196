"""Loading what the report shows: study folders (summary.json, figures, trajectories), a benchmark report, a store.

Nothing here writes HTML. Every file a study's summary.json names (a figure, ``trajectories.json``, an animation)
is embedded only if it resolves to a file inside that study's folder (symbolic links are followed first), so a
summary cannot pull ``/etc/hostname`` or ``../secret.txt`` into the page.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from descentlab.report.formatting import as_float, format_value

COMMAND_FILE = "command.txt"
"""Optional in a bench folder: the command that reproduces the benchmark (the tour writes it)."""
FAILED_FILE = "failed.json"
"""Written by ``descentlab tour`` into a study folder when the study raised: ``{"study", "error", "seconds"}``."""

VERDICTS = ("holds", "fails", "inconclusive")
"""A claim's three-valued verdict."""
ANCHOR_VERDICTS = ("reproduced", "inconclusive", "not reproduced", "direction and size only", "partly")
"""How a measured quantity compares with its published number (equivalence within a declared tolerance since issue 26;
``partly`` only in older summaries)."""
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif"}
"""The files a page embeds as images, by suffix."""

MAX_RUN_ROWS = 2000
MAX_ANIMATION_BYTES = 5_000_000
MAX_FIGURE_BYTES = 20_000_000
"""The largest figure file a page embeds (20 MB); a bigger one is named on the page instead."""


def linked_from_outside(root: Path, path: Path) -> bool:
    """Whether the file ``path`` (inside ``root``) has a hard link whose name is not inside ``root``: its link count
    is higher than the names ``root`` holds for it (links inside the folder are counted, none followed)."""
    try:
        st = path.stat()
    except OSError:
        return True
    if st.st_nlink <= 1:
        return False
    names = 0
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            try:
                s = os.lstat(os.path.join(dirpath, f))
            except OSError:
                continue
            names += s.st_ino == st.st_ino and s.st_dev == st.st_dev
    return names < st.st_nlink


def inside(folder: Path, name: Any) -> Path | None:
    """``folder / name`` resolved (symbolic links followed) if it is a file inside ``folder``, else None.

    Absolute names, ``..`` components, links that lead out of the folder and files hard-linked from outside it all
    give None."""
    if not isinstance(name, str) or not name or "\x00" in name:
        return None
    try:
        root = folder.resolve()
        path = (folder / name).resolve()
    except (OSError, RuntimeError, ValueError):  # a link loop, an unreadable folder
        return None
    if path == root or not path.is_relative_to(root) or not path.is_file():
        return None
    if linked_from_outside(root, path):  # the same file under a name elsewhere: not the folder's to show
        return None
    return path


def _too_big(path: Path, name: str, what: str = "figure") -> str:
    """Why ``path`` is not embedded because of its size ('' when it is small enough)."""
    size = path.stat().st_size
    if size <= MAX_FIGURE_BYTES:
        return ""
    return f"{what} {name} is {size / 1e6:.1f} MB, over the {MAX_FIGURE_BYTES / 1e6:.0f} MB cap on embedded figures"


def claim_verdict(claim: dict[str, Any]) -> str:
    """A claim's verdict: its ``verdict`` when it is one of VERDICTS, else ``holds``/``fails`` from its ``holds``
    flag (summaries written before verdicts were three-valued)."""
    v = claim.get("verdict")
    if v in VERDICTS:
        return str(v)
    return "holds" if claim.get("holds") else "fails"


@dataclass
class Figure:
    """A figure a summary names: its name as written and the file to embed (None with ``error`` when refused)."""

    name: str
    path: Path | None = None
    error: str = ""
    animation: bool = False


@dataclass
class StudySection:
    """One study as the page shows it: its summary (or the error that stopped it) and its folder."""

    name: str
    folder: Path | None
    summary: dict[str, Any] | None = None
    error: str | None = None
    seconds: float | None = None
    trajectories: dict[str, Any] | None = None
    figures: list[Figure] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        """Whether the study produced no summary (it raised, or its folder holds no summary.json)."""
        return self.summary is None

    @property
    def claims(self) -> list[dict[str, Any]]:
        """The claims (dicts, each with a ``verdict`` in VERDICTS added when missing); empty for a failed study."""
        raw = (self.summary or {}).get("claims")
        if not isinstance(raw, list):
            return []
        return [{**c, "verdict": claim_verdict(c)} for c in raw if isinstance(c, dict)]

    @property
    def checks(self) -> list[dict[str, Any]]:
        """Sanity checks and identities (never counted as claims)."""
        raw = (self.summary or {}).get("checks")
        return [c for c in raw if isinstance(c, dict)] if isinstance(raw, list) else []

    @property
    def anchors(self) -> list[dict[str, Any]]:
        """Measured quantities compared with published numbers."""
        raw = (self.summary or {}).get("anchors")
        return [a for a in raw if isinstance(a, dict)] if isinstance(raw, list) else []

    def count(self, verdict: str) -> int:
        """How many claims have ``verdict``."""
        return sum(c["verdict"] == verdict for c in self.claims)

    @property
    def claims_held(self) -> int:
        """How many claims hold."""
        return self.count("holds")

    @property
    def claims_failed(self) -> int:
        """How many claims fail."""
        return self.count("fails")

    @property
    def claims_inconclusive(self) -> int:
        """How many claims are inconclusive."""
        return self.count("inconclusive")

    @property
    def status(self) -> str:
        """``failed`` (no summary), ``ok`` (every claim holds) or ``partial`` (some fail or are inconclusive)."""
        if self.failed:
            return "failed"
        return "ok" if self.claims_held == len(self.claims) else "partial"


@dataclass
class BenchSection:
    """A benchmark report folder (what ``descentlab bench report`` writes): leaderboard.md and PNG plots."""

    folder: Path | None
    markdown: str = ""
    images: list[Path] = field(default_factory=list)
    error: str | None = None
    command: str = (
        "descentlab bench run ... && descentlab bench report --out DIR  (the same options for both)"
    )
    unit: str = "s"
    """``"s"`` (AlgoPerf's time-to-target leaderboard) or ``"steps"`` (the fewest-steps track)."""


def _read_json(path: Path) -> Any:
    """The JSON in ``path``; ValueError when unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(str(exc)) from None
    except RecursionError:
        raise ValueError(f"{path.name} is nested too deeply to read") from None


def _study_figures(folder: Path, summary: dict[str, Any]) -> list[Figure]:
    """The summary's figures and the animations it names among its top-level numbers (e.g. ``"gif"``), each
    resolved inside ``folder`` or refused with a reason."""
    out: list[Figure] = []
    names = summary.get("figures")
    for name in names if isinstance(names, list) else []:
        path = inside(folder, name)
        if path is None:
            out.append(Figure(str(name), error=f"figure {name} is missing from the study folder"))
        elif path.suffix.lower() not in IMAGE_TYPES:
            out.append(Figure(str(name), error=f"figure {name} is not a PNG, JPEG or GIF file"))
        elif _too_big(path, str(name)):
            out.append(Figure(str(name), error=_too_big(path, str(name))))
        else:
            out.append(Figure(str(name), path))
    numbers = summary.get("numbers")
    for v in numbers.values() if isinstance(numbers, dict) else []:
        if isinstance(v, str) and v.lower().endswith(".gif"):
            path = inside(folder, v)
            if path is not None and path.stat().st_size <= MAX_ANIMATION_BYTES:
                out.append(Figure(v, path, animation=True))
    return out


def load_study(folder: str | Path) -> StudySection:
    """Read a study output folder: ``summary.json`` (and ``trajectories.json`` when present), else ``failed.json``.

    A folder with neither is a failed section ("no summary.json"); a folder that does not exist is a ValueError.
    Figures and the trajectories file are taken only from inside the folder.
    """
    path = Path(folder)
    if not path.is_dir():
        raise ValueError(f"study folder {str(path)!r} does not exist or is not a folder")
    summary_path = path / "summary.json"
    if summary_path.is_file():
        try:
            summary = _read_json(summary_path)
        except ValueError as exc:
            return StudySection(path.name, path, error=f"unreadable summary.json: {exc}")
        if not isinstance(summary, dict):
            return StudySection(path.name, path, error="summary.json is not a JSON object")
        name = str(summary.get("study") or path.name)
        if summary.get("status") == "interrupted":  # a stopped study: what ran, no verdict to show
            note = summary.get("note") or "interrupted"
            return StudySection(name, path, error=str(note), seconds=as_float(summary.get("seconds")))
        sec = StudySection(name, path, summary=summary, seconds=as_float(summary.get("seconds")))
        sec.figures = _study_figures(path, summary)
        numbers = summary.get("numbers")
        traj_name = numbers.get("trajectories") if isinstance(numbers, dict) else None
        traj_path = inside(path, traj_name if isinstance(traj_name, str) else "trajectories.json")
        if traj_path is not None:
            try:
                sec.trajectories = normalize_trajectories(_read_json(traj_path))
                why = "" if sec.trajectories is not None else "not the shape the race viewer draws"
            except ValueError as exc:
                sec.trajectories, why = None, str(exc)
            if why:  # named on the page instead of the viewer
                sec.figures.append(Figure(traj_path.name, error=f"{traj_path.name} is malformed: {why}"))
        return sec
    failed_path = path / FAILED_FILE
    if failed_path.is_file():
        try:
            info = _read_json(failed_path)
        except ValueError:
            info = {}
        info = info if isinstance(info, dict) else {}
        return StudySection(
            str(info.get("study") or path.name),
            path,
            error=str(info.get("error") or "the study failed"),
            seconds=as_float(info.get("seconds")),
        )
    return StudySection(path.name, path, error=f"no summary.json in {path}")


def normalize_trajectories(data: Any) -> dict[str, Any] | None:
    """``trajectories.json`` as ``{"functions": {name: {"contours", "runs", ...}}}``; a single-function file
    ``{"function", "contours", "runs"}`` is wrapped under its function name. None when neither shape fits."""
    if not isinstance(data, dict):
        return None
    if isinstance(data.get("functions"), dict) and data["functions"]:
        return data if all(_trajectory_shape(f) for f in data["functions"].values()) else None
    if _trajectory_shape(data):
        return {"functions": {str(data.get("function") or "function"): data}}
    return None


def _trajectory_shape(f: Any) -> bool:
    """Whether ``f`` is one function's entry: ``contours`` with x, y, z lists and ``runs`` {method: {lr: [...]}}."""
    if (
        not isinstance(f, dict)
        or not isinstance(f.get("contours"), dict)
        or not isinstance(f.get("runs"), dict)
    ):
        return False
    if not all(isinstance(f["contours"].get(k), list) for k in ("x", "y", "z")):
        return False
    return all(
        isinstance(v, dict) and all(isinstance(p, list) for p in v.values()) for v in f["runs"].values()
    )


def find_study_folders(folder: str | Path) -> list[Path]:
    """``folder`` itself if it holds a study's output, else its sub-folders that do (e.g. ``runs/tour/studies``)."""
    path = Path(folder)
    if not path.is_dir():
        raise ValueError(f"study folder {str(path)!r} does not exist or is not a folder")
    if (path / "summary.json").is_file() or (path / FAILED_FILE).is_file():
        return [path]
    subs = sorted(
        p
        for p in path.iterdir()
        if p.is_dir() and ((p / "summary.json").is_file() or (p / FAILED_FILE).is_file())
    )
    return subs or [path]


def bench_json_markdown(data: Any, source: str = "scores JSON") -> str:
    """The leaderboard (rank, algorithm, score, time to target per workload) as a Markdown table, from the JSON of
    ``descentlab bench score --json``: ``{"scores": {alg: s}, "times": {alg: {workload: seconds or null}}}``."""
    if not isinstance(data, dict) or not isinstance(data.get("scores"), dict) or not data["scores"]:
        raise ValueError(
            f"bench {source} has no 'scores' object (expected the output of `descentlab bench score --json`)"
        )
    scores, times = data["scores"], data.get("times") if isinstance(data.get("times"), dict) else {}
    workloads = sorted({w for row in times.values() if isinstance(row, dict) for w in row})
    sci = data.get("score_intervals") if isinstance(data.get("score_intervals"), dict) else None
    ranks = data.get("ranks") if isinstance(data.get("ranks"), dict) else {}
    pct = f"{round(100 * (as_float(data.get('ci')) or 0.9))} % interval"
    lines = ["| rank | algorithm | score | " + (f"{pct} | " if sci else "")
             + " | ".join(f"{w} ({'steps' if data.get('unit') == 'steps' else 's'})" for w in workloads)
             + " |"]  # fmt: skip
    lines.append("|---:|---|---:|" + ("---|" if sci else "") + "---:|" * len(workloads))
    ranked = sorted(scores, key=lambda a: -(as_float(scores[a]) or 0.0))
    for i, a in enumerate(ranked, 1):
        row = times.get(a) if isinstance(times.get(a), dict) else {}
        cells = [format_value(as_float(row.get(w))) if row.get(w) is not None else "—" for w in workloads]
        rank = str(i)
        r = ranks.get(a)
        if isinstance(r, dict) and isinstance(r.get("rank"), int):
            rank = f"={r['rank']}" if r.get("tie") else str(r["rank"])
        iv = ""
        if sci:
            b = sci.get(a)
            iv = (f"[{format_value(as_float(b[0]))}, {format_value(as_float(b[1]))}] | "
                  if isinstance(b, list) and len(b) == 2 else "— | ")  # fmt: skip
        lines.append(
            f"| {rank} | {a} | {format_value(as_float(scores[a]))} | {iv}" + " | ".join(cells) + " |"
        )
    if sci:
        lines += ["", f"Rank =k: the {pct} overlaps another algorithm's (a tie). Intervals: bootstrap over "
                  f"{data.get('resampled', 'studies')}."]  # fmt: skip
    missing = data.get("missing")
    if isinstance(missing, int) and missing:
        lines += ["", f"{missing} trials had no result (counted as misses)."]
    lines += ["", "Steps to target; — = target missed." if data.get("unit") == "steps" else
              "Time to target in seconds of training time; — = target missed."]  # fmt: skip
    return "\n".join(lines) + "\n"


def load_bench(folder: str | Path) -> BenchSection:
    """Read a benchmark report folder (``leaderboard.md``; ``profiles.png``, ``times.png``, ``curves_*.png``, others after)
    or the JSON file of ``descentlab bench score --json`` (a leaderboard table without plots)."""
    path = Path(folder)
    if path.is_file() and path.suffix.lower() == ".json":
        try:
            data = _read_json(path)
        except ValueError as exc:
            raise ValueError(f"bench JSON {str(path)!r} is unreadable: {exc}") from None
        unit = "steps" if isinstance(data, dict) and data.get("unit") == "steps" else "s"
        return BenchSection(path, markdown=bench_json_markdown(data, repr(str(path))), unit=unit)
    if not path.exists():
        raise ValueError(f"bench {str(path)!r} does not exist")
    if not path.is_dir():
        raise ValueError(
            f"bench {str(path)!r} is neither a folder (`descentlab bench report --out`) nor a .json file "
            "(`descentlab bench score --json`)"
        )
    md = inside(path, "leaderboard.md")
    pngs = sorted(
        (p for p in path.glob("*.png") if inside(path, p.name) is not None and not _too_big(p, p.name)),
        key=lambda p: (
            p.name != "profiles.png",
            p.name != "times.png",
            not p.name.startswith("curves_"),
            p.name,
        ),
    )
    if md is None and not pngs:
        failed = path / FAILED_FILE
        if failed.is_file():
            try:
                err = str(_read_json(failed).get("error", "the benchmark failed"))
            except (ValueError, AttributeError):
                err = "the benchmark failed"
            return BenchSection(path, error=err)
        raise ValueError(
            f"bench folder {str(path)!r} holds no leaderboard.md or PNG (see `descentlab bench report`)"
        )
    sec = BenchSection(path, markdown=md.read_text(encoding="utf-8") if md else "", images=pngs)
    board = inside(path, "leaderboard.json")
    if board is not None:
        try:
            sec.unit = "steps" if _read_json(board).get("unit") == "steps" else "s"
        except (ValueError, AttributeError):
            pass  # the Markdown table still says what it measures
    command = inside(path, COMMAND_FILE)
    if command is not None:
        sec.command = command.read_text(encoding="utf-8").strip()
    return sec


def load_runs(store: str | Path) -> list[dict[str, Any]]:
    """Runs of a store (newest first), as ``Store.list_runs`` gives them; ValueError if the file does not exist."""
    from descentlab.store import Store

    path = Path(store)
    if not path.is_file():
        raise ValueError(f"store {str(path)!r} does not exist")
    with Store(path) as st:
        return st.list_runs(limit=MAX_RUN_ROWS)


def select_runs(store: str | Path, patterns: list[str]) -> list[Any]:
    """The stored runs (``descentlab.store.Run`` with metric history) whose id matches one of ``patterns`` (exact
    ids or shell globs such as ``sgd-noise-floor-*``), oldest first; ValueError naming a pattern that matches none."""
    import fnmatch

    from descentlab.store import Store

    path = Path(store)
    if not path.is_file():
        raise ValueError(f"store {str(path)!r} does not exist")
    with Store(path) as st:
        ids = st.run_ids()
        chosen: list[str] = []
        for pat in patterns:
            hits = [i for i in ids if i == pat or fnmatch.fnmatchcase(i, pat)]
            if not hits:
                shown = ", ".join(ids[-8:]) or "none"
                raise ValueError(f"no run in {str(path)!r} matches {pat!r}; newest ids: {shown}")
            chosen.extend(h for h in hits if h not in chosen)
        if len(chosen) > MAX_RUN_ROWS:
            raise ValueError(
                f"--runs selects {len(chosen)} runs; at most {MAX_RUN_ROWS}, narrow the patterns"
            )
        return [st.load_run(i) for i in chosen]
