"""Rendering the report: jinja2 templates (autoescaped) -> one self-contained HTML page.

The templates live in ``templates/`` (package data); ``templates/static/report.css`` and ``race.js`` are inlined at
build time, PNG figures become base64 ``data:`` URIs and the methods-race trajectories an inline JSON block, so
``index.html`` opens from disk with no network and no server. Markdown (the benchmark leaderboard) goes through
markdown-it-py with raw HTML disabled. What is shown comes from :mod:`descentlab.report.load`.
"""

from __future__ import annotations

import base64
import io
import json
import math
import re
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, Undefined
from markupsafe import Markup

from descentlab.report.formatting import (
    flatten_numbers,
    format_estimate,
    format_number,
    format_seeds,
    format_value,
    reproduce_command,
    seed_order,
    train_command,
)
from descentlab.report.load import (
    IMAGE_TYPES,
    MAX_RUN_ROWS,
    BenchSection,
    StudySection,
    find_study_folders,
    load_bench,
    load_runs,
    load_study,
    select_runs,
)

TEMPLATES = Path(__file__).with_name("templates")
"""The page's templates (package data), with ``static/`` (CSS, JavaScript) beside them."""
DEFAULT_TITLE = "descentlab: a tour of optimization phenomena"
MAX_NUMBER_ROWS = 300
MAX_CURVES = 40
STATUS_LABELS = {
    "ok": "all claims hold",
    "partial": "some claims fail or are inconclusive",
    "failed": "failed",
}
"""A study section's status (``data-status``) and the label its badge shows."""


# ---------------------------------------------------------------------------------------------- environment


def _plain(v: Any) -> Any:
    return None if isinstance(v, Undefined) else v


def _text(v: Any) -> str:
    v = _plain(v)
    return "" if v is None else str(v)


def _css_class(v: Any) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", _text(v).lower()).strip("-")


@lru_cache(maxsize=1)
def environment() -> Environment:
    """The jinja2 environment of the page: package templates, autoescaping on, the report's number filters."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=Undefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        value=lambda v: format_value(_plain(v)),
        num=lambda v: format_number(_plain(v)),
        estimate=lambda m, i=None, scale=None: format_estimate(_plain(m), _plain(i), scale),
        seeds=lambda v: format_seeds(_plain(v)),
        text=_text,
        css_class=_css_class,
        markdown=markdown_to_html,
    )
    env.policies["json.dumps_kwargs"] = {"sort_keys": False}  # the viewer keeps the study's method order
    return env


def static_file(name: str) -> Markup:
    """The text of ``templates/static/<name>`` (trusted package data), ready to inline."""
    return Markup((TEMPLATES / "static" / name).read_text(encoding="utf-8"))


def markdown_to_html(md: str) -> Markup:
    """Markdown (CommonMark plus pipe tables, raw HTML disabled) rendered by markdown-it-py."""
    from markdown_it import MarkdownIt

    parser = MarkdownIt("commonmark", {"html": False}).enable("table")
    return Markup(parser.render(str(md)))


# ---------------------------------------------------------------------------------------------- images


def png_data_uri(path: Path) -> str:
    """``data:image/png;base64,...`` of a PNG file (JPEG and GIF by their suffix)."""
    mime = IMAGE_TYPES.get(path.suffix.lower(), "application/octet-stream")
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _contour_png(contours: dict[str, Any]) -> str:
    """The contour plot of a function grid as a borderless PNG data URI (axes fill the image exactly)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.colors import LogNorm

    x, y = np.asarray(contours["x"], float), np.asarray(contours["y"], float)
    z = np.asarray(contours["z"], float)
    levels = np.asarray(contours.get("levels") or np.linspace(np.nanmin(z), np.nanmax(z), 12), float)
    fig = plt.figure(figsize=(4, 4), dpi=100)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    log = levels[0] > 0 and levels[-1] / levels[0] > 100
    norm = LogNorm(levels[0], levels[-1]) if log else None
    if log:
        z = np.clip(z, levels[0] * 0.5, None)  # the log scale masks z <= 0 (e.g. the minimum itself)
    ax.contourf(x, y, z, levels=levels, cmap="GnBu_r", norm=norm, extend="both", alpha=0.85)
    ax.contour(x, y, z, levels=levels, colors="0.35", linewidths=0.5, norm=norm)
    ax.set_xlim(x[0], x[-1])
    ax.set_ylim(y[0], y[-1])
    ax.set_axis_off()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _run_label(run: Any) -> str:
    cfg = run.config or {}
    return f"{run.id} · {cfg.get('optimizer', '?')} lr={format_value(cfg.get('lr'))}"


_CURVE_METRICS = (
    ("loss", "validation loss"),
    ("train_loss", "training loss"),
    ("accuracy", "validation accuracy"),
)


def runs_curves_png(runs: list[Any]) -> str | None:
    """Metric histories of the selected runs (validation loss, training loss, accuracy vs step; log scale for
    losses) as a PNG data URI; None when no run recorded any of them. A diverged run is drawn until it leaves the
    window set by the others (losses up to 10x the largest starting loss)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = runs[:MAX_CURVES]
    panels = [(k, t) for k, t in _CURVE_METRICS if any(len(r.metrics(k)) > 1 for r in shown)]
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.8), squeeze=False)
    handles: list[Any] = []
    for ax, (key, title) in zip(axes[0], panels):
        drawn = []
        for r in shown:
            pts = [(st, v) for st, v in r.metrics(key) if math.isfinite(v)]
            if len(pts) > 1:
                label = _run_label(r) + (f" ({r.status})" if r.status != "finished" else "")
                (line,) = ax.plot([p[0] for p in pts], [p[1] for p in pts], lw=1.3, label=label)
                drawn.append(pts)
                if ax is axes[0][0]:
                    handles.append(line)
        values = [v for pts in drawn for _, v in pts]
        if key.endswith("loss") and values and min(values) > 0:
            ax.set_yscale("log")
            top = 10 * max(pts[0][1] for pts in drawn)
            ax.set_ylim(min(values) / 1.5, min(max(values) * 1.5, top))
        ax.set_xlabel("step")
        ax.set_ylabel(title)
        ax.set_title(title)
        ax.grid(alpha=0.3, which="both")
    if len(handles) <= 4:
        axes[0][0].legend(fontsize=7)
    else:  # many runs: one legend under the panels instead of covering them
        fig.legend(
            handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=3, fontsize=7, frameon=False
        )
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


# ---------------------------------------------------------------------------------------------- the race


def _json_number(v: Any) -> Any:
    """A finite float stays a number; anything else (inf, nan, text) becomes its text, valid in strict JSON."""
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    return v if ok else str(v)


def _finite_points(pts: Any) -> list[list[float]]:
    """The [x, y] points of a path that are finite numbers (a diverged run stops where it left the reals)."""
    out = []
    for p in pts or []:
        try:
            x, y = float(p[0]), float(p[1])
        except (TypeError, ValueError, IndexError):
            continue
        if not (math.isfinite(x) and math.isfinite(y)):
            break
        out.append([x, y])
    return out


def race_payload(trajectories: dict[str, Any], numbers: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the race viewer needs per function: window, contour image, start, labels, paths by method and lr,
    the final loss of each (from the study's numbers, when there) and each method's best lr."""
    out: dict[str, Any] = {"functions": {}}
    numbers = numbers or {}
    for fn, d in trajectories.get("functions", {}).items():
        c = d.get("contours") or {}
        if not c.get("x") or not c.get("y") or not c.get("z"):
            continue
        fn_numbers = numbers.get(fn) if isinstance(numbers.get(fn), dict) else {}
        final = {
            m: {str(lr): _json_number(x) for lr, x in (v.get("final_loss") or {}).items()}
            for m, v in fn_numbers.items()
            if isinstance(v, dict) and isinstance(v.get("final_loss"), dict)
        }
        best = {
            m: f"{v['best_lr']:g}"
            for m, v in fn_numbers.items()
            if isinstance(v, dict) and isinstance(v.get("best_lr"), (int, float))
        }
        out["functions"][str(fn)] = {
            "extent": [c["x"][0], c["x"][-1], c["y"][0], c["y"][-1]],
            "image": _contour_png(c),
            "start": d.get("start"),
            "labels": {str(k): str(v) for k, v in (d.get("labels") or {}).items()},
            "runs": {
                str(m): {str(lr): _finite_points(pts) for lr, pts in (grid or {}).items()}
                for m, grid in (d.get("runs") or {}).items()
            },
            "final": final,
            "best": best,
        }
    return out


# ---------------------------------------------------------------------------------------------- view models


def section_id(name: str) -> str:
    """The HTML id of a study's section (``study-<name>``, lower case, other characters as ``-``)."""
    return "study-" + re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")


def _slide(sec: StudySection) -> str:
    slide = str((sec.summary or {}).get("slide") or "")
    if slide:
        return slide
    try:
        from descentlab import studies

        return str(studies.get(sec.name).slide)
    except (ValueError, ImportError):
        return ""


def _judging_view(summary: dict[str, Any], claims: list[dict[str, Any]]) -> dict[str, Any]:
    """How a study's claims were judged: design, seeds used, Holm/BH counts, split halves, predictions' version."""
    from descentlab.studies.claims import ALPHA, verdict_counts

    design = summary.get("design") if isinstance(summary.get("design"), dict) else {}
    used = [c.get("seeds_used") for c in claims if isinstance(c.get("seeds_used"), int)]
    adjusted = any(isinstance(c.get("adjusted"), dict) for c in claims)
    split = summary.get("split_half") if isinstance(summary.get("split_half"), dict) else None
    prereg = summary.get("preregistration") if isinstance(summary.get("preregistration"), dict) else None
    return {
        "design": str(design.get("description", "")),
        "seeds_used": ", ".join(map(str, used))
        if used and len(set(used)) > 1
        else (str(used[0]) if used else ""),
        "adjusted": adjusted,
        "adjusted_counts": {m: verdict_counts(claims, m) for m in ("holm", "fdr_bh")} if adjusted else {},
        "alpha": (summary.get("multiplicity") or {}).get("alpha", ALPHA),
        "split_half": split if split and isinstance(split.get("predictions"), list) else None,
        "prereg": prereg if prereg and isinstance(prereg.get("versions"), list) else None,
        "tour_adjusted": 0,
    }


def tour_adjustment(sections: list[StudySection]) -> dict[str, Any]:
    """Holm and Benjamini-Hochberg over every claim of the page (all studies one family), on the claims' one-sided
    p-values; the raw counts beside them, and ``per_study``: each study's claims' tour-wide Holm verdicts."""
    from descentlab.studies.claims import ALPHA, adjust, verdict_counts

    owners = [(s.name, c) for s in sections if not s.failed for c in s.claims]
    out = adjust([c for _, c in owners], alpha=ALPHA)
    per: dict[str, list[str]] = {}
    for (name, _), a in zip(owners, out):
        per.setdefault(name, []).append(a["adjusted"]["holm"])
    return {
        "per_study": per,
        "alpha": ALPHA,
        "claims": len(owners),
        "with_p": sum("unadjusted" not in a for a in out),
        "raw": verdict_counts(out),
        "holm": verdict_counts(out, "holm"),
        "fdr_bh": verdict_counts(out, "fdr_bh"),
    }


def _study_view(sec: StudySection, describe: dict[str, str]) -> dict[str, Any]:
    """What study.html.j2 shows of one section."""
    claims = sec.claims
    counts = {"holds": sec.claims_held, "fails": sec.claims_failed, "inconclusive": sec.claims_inconclusive}
    view: dict[str, Any] = {
        "name": sec.name,
        "sid": section_id(sec.name),
        "status": sec.status,
        "label": STATUS_LABELS[sec.status] if claims or sec.failed else "no claims",
        "badge": "failed" if sec.failed else f"{sec.claims_held}/{len(claims)}",
        "slide": _slide(sec),
        "description": describe.get(sec.name, ""),
        "error": (sec.error or "failed") if sec.failed else None,
        "claims": claims,
        "counts": counts,
        "measured": any(k in c for c in claims for k in ("mean", "predicted", "n")),
        "checks": sec.checks,
        "anchors": sec.anchors,
    }
    if sec.failed:
        return view
    summary = sec.summary or {}
    view.update(_judging_view(summary, claims))
    view["figures"] = [
        {"uri": png_data_uri(f.path), "alt": f.path.stem + (" (animation)" if f.animation else ""),
         "caption": f.path.name + (" (animation)" if f.animation else "")}
        if f.path is not None
        else {"error": f.error}
        for f in sec.figures
    ]  # fmt: skip
    view["race"] = view["race_error"] = None
    if sec.trajectories:
        try:
            payload = race_payload(sec.trajectories, summary.get("numbers"))
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            view["race_error"] = str(exc)
        else:
            view["race"] = payload if payload["functions"] else None
    rows = flatten_numbers(summary.get("numbers") or {})
    view["numbers"], view["numbers_total"] = rows[:MAX_NUMBER_ROWS], len(rows)
    view["command"] = reproduce_command(summary)
    meta = [f"{sec.seconds:.1f} s"] if sec.seconds is not None else []
    meta.append("quick variant" if summary.get("quick") else "full variant")
    meta.append(f"{len(summary.get('runs') or [])} runs")
    seeds = summary.get("seeds")
    if isinstance(seeds, dict):
        meta += [f"{k} seeds {format_seeds(v)}" for k, v in seeds.items()]
    view["meta"] = meta
    return view


def _selected_view(runs: list[Any]) -> dict[str, Any]:
    """What selected.html.j2 shows: the curves, one row per run and the train commands of the first five."""
    rows = []
    for r in runs:
        cfg, fin = r.config or {}, r.final or {}
        final = ", ".join(f"{k}={format_value(fin[k])}" for k in ("loss", "accuracy", "step") if k in fin)
        cells = [r.id, r.status, cfg.get("task"), cfg.get("optimizer"), format_value(cfg.get("lr")),
                 json.dumps(cfg.get("hparams") or {}, default=str), cfg.get("schedule") or "—", cfg.get("seed"),
                 final]  # fmt: skip
        rows.append(["" if c is None else str(c) for c in cells])
    shown = runs[:5]
    cmds = "\n".join(f"# {r.id}\n{train_command(r.config or {})}" for r in shown)
    if len(runs) > len(shown):
        cmds += f"\n# … {len(runs) - len(shown)} more: descentlab runs show ID"
    return {
        "runs": runs,
        "rows": rows,
        "curves": runs_curves_png(runs),
        "commands": cmds,
        "max_curves": MAX_CURVES,
    }


BENCH_CAPTIONS = {
    "profiles.png": "Performance profiles: fraction of workloads each algorithm reaches within tau times the fastest",
    "times.png": "Time to target per workload and algorithm: every trial, each study's best (box over studies), misses",
}


def _bench_view(bench: BenchSection, index: int = 0) -> dict[str, Any]:
    steps = bench.unit == "steps"
    figures = [
        {"uri": png_data_uri(p), "alt": p.stem,
         "caption": BENCH_CAPTIONS.get(p.name, p.name).replace("Time to target", "Steps to target") if steps
         else BENCH_CAPTIONS.get(p.name, p.name)} for p in bench.images
    ]  # fmt: skip
    return {"error": bench.error, "markdown": bench.markdown, "figures": figures, "command": bench.command,
            "steps": steps, "id": "bench" if index == 0 else f"bench-{index + 1}",
            "title": "Fewest-steps track" if steps else "Benchmark (AlgoPerf rules)"}  # fmt: skip


# ---------------------------------------------------------------------------------------------- the page


def build_page(
    studies: list[StudySection],
    bench: BenchSection | list[BenchSection] | None = None,
    runs: list[dict[str, Any]] | None = None,
    title: str = DEFAULT_TITLE,
    selected: list[Any] | None = None,
) -> str:
    """The HTML text of the page: header (claims tally) with a table of contents, the reproduction table (all
    studies' published anchors), one section per study (lecture order), the selected runs (curves), the benchmark
    sections (one per ``bench``: AlgoPerf's leaderboard, the fewest-steps track) and the runs table.
    Self-contained: no external resources."""
    try:
        from descentlab import studies as registry

        describe = registry.describe()
    except ImportError:
        describe = {}
    ordered = sorted(studies, key=lambda s: (seed_order(str((s.summary or {}).get("slide", ""))), s.name))
    multiplicity = tour_adjustment(ordered)
    views = [_study_view(s, describe) for s in ordered]
    for v in views:
        if v.get("adjusted") and len(ordered) > 1:
            v["tour_adjusted"] = multiplicity["claims"]
            for c, tv in zip(v["claims"], multiplicity["per_study"].get(v["name"], [])):
                c["tour_holm"] = tv
    anchors = [{**a, "study": v["name"], "sid": v["sid"]} for v in views for a in v["anchors"]]
    checks = [c for s in ordered for c in s.checks]
    tally = {
        "failed_studies": sum(s.failed for s in ordered),
        "claims": sum(len(s.claims) for s in ordered),
        "holds": sum(s.claims_held for s in ordered),
        "fails": sum(s.claims_failed for s in ordered),
        "inconclusive": sum(s.claims_inconclusive for s in ordered),
        "checks": len(checks),
        "checks_passed": sum(bool(c.get("passed")) for c in checks),
        "multiplicity": multiplicity if multiplicity["with_p"] else None,
    }
    has_race = any(v.get("race") for v in views)
    return (
        environment()
        .get_template("page.html.j2")
        .render(
            title=title,
            css=static_file("report.css"),
            race_js=static_file("race.js") if has_race else None,
            studies=views,
            anchors=anchors,
            tally=tally,
            selected=_selected_view(selected) if selected else None,
            benches=[_bench_view(b, i) for i, b in enumerate(_as_list(bench))],
            runs=runs,
            max_runs=MAX_RUN_ROWS,
            stamp=time.strftime("%Y-%m-%d %H:%M"),
        )
    )


def _as_list(x: Any) -> list[Any]:
    return [] if x is None else list(x) if isinstance(x, (list, tuple)) else [x]


def write_report(
    out: str | Path,
    studies: list[str | Path] | None = None,
    bench: str | Path | list[str | Path] | None = None,
    store: str | Path | None = None,
    title: str = DEFAULT_TITLE,
    extra: list[StudySection] | None = None,
    run_ids: list[str] | None = None,
) -> Path:
    """Build the page from existing outputs (study folders or folders of them, bench report folders or scores
    JSON files, a store) and write ``<out>/index.html``; returns its path. ``run_ids`` (ids or globs) selects runs of
    ``store`` (default: the default store) for a curves section and restricts the runs table to them. ``extra``
    adds sections built elsewhere."""
    folders: list[Path] = []
    for s in studies or []:
        folders.extend(find_study_folders(s))
    sections = [load_study(f) for f in folders] + list(extra or [])
    benches = _as_list(bench)
    if not sections and not benches and store is None and not run_ids:
        raise ValueError(
            "nothing to report: give --study DIR (repeatable), --runs ID, --bench DIR or --store PATH"
        )
    bench_sec = [load_bench(b) for b in benches]
    selected = None
    if run_ids:
        from descentlab.store import default_path

        selected = select_runs(store if store is not None else default_path(), list(run_ids))
        runs = [r.to_dict() for r in reversed(selected)]
    else:
        runs = load_runs(store) if store is not None else None
    out_dir = Path(out)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out {str(out_dir)!r} is a file; give a folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    page = out_dir / "index.html"
    html = build_page(sections, bench_sec, runs, title, selected=selected)
    from descentlab.safe_write import write_text

    try:  # temporary file + rename: a failed write keeps the previous page; a planted link is refused
        write_text(page, html)
    except OSError as exc:
        raise ValueError(
            f"cannot write {str(page)!r}: {exc.strerror or exc}; the previous page is unchanged"
        ) from None
    return page


__all__ = [
    "DEFAULT_TITLE",
    "STATUS_LABELS",
    "build_page",
    "environment",
    "markdown_to_html",
    "png_data_uri",
    "race_payload",
    "runs_curves_png",
    "section_id",
    "write_report",
]
