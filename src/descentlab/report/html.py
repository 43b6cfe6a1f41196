"""The self-contained HTML report: study folders (summary.json + figures), a benchmark folder and the store -> one page.

Everything is embedded (PNG figures as base64 ``data:`` URIs, the methods-race trajectories as JSON with a small
vanilla-JS viewer), so ``index.html`` opens from disk with no network and no server.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import re
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

COMMAND_FILE = "command.txt"
"""Optional in a bench folder: the command that reproduces the benchmark (the tour writes it)."""
FAILED_FILE = "failed.json"
"""Written by ``descentlab tour`` into a study folder when the study raised: ``{"study", "error", "seconds"}``."""

_MAX_RUN_ROWS = 2000
_MAX_NUMBER_ROWS = 300
_MAX_ANIMATION_BYTES = 5_000_000


@dataclass
class StudySection:
    """One study as the page shows it: its summary (or the error that stopped it) and its folder."""

    name: str
    folder: Path | None
    summary: dict[str, Any] | None = None
    error: str | None = None
    seconds: float | None = None
    trajectories: dict[str, Any] | None = None

    @property
    def failed(self) -> bool:
        """Whether the study produced no summary (it raised, or its folder holds no summary.json)."""
        return self.summary is None

    @property
    def claims(self) -> list[dict[str, Any]]:
        """The checked claims (empty for a failed study)."""
        return list((self.summary or {}).get("claims", []))

    @property
    def claims_held(self) -> int:
        """How many claims hold."""
        return sum(bool(c.get("holds")) for c in self.claims)


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


# ---------------------------------------------------------------------------------------------- loading


def load_study(folder: str | Path) -> StudySection:
    """Read a study output folder: ``summary.json`` (and ``trajectories.json`` when present), else ``failed.json``.

    A folder with neither is a failed section ("no summary.json"); a folder that does not exist is a ValueError.
    """
    path = Path(folder)
    if not path.is_dir():
        raise ValueError(f"study folder {str(path)!r} does not exist or is not a folder")
    summary_path = path / "summary.json"
    if summary_path.is_file():
        try:
            summary = json.loads(summary_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return StudySection(path.name, path, error=f"unreadable summary.json: {exc}")
        if not isinstance(summary, dict):
            return StudySection(path.name, path, error="summary.json is not a JSON object")
        name = str(summary.get("study") or path.name)
        sec = StudySection(name, path, summary=summary, seconds=_as_float(summary.get("seconds")))
        traj_name = (
            (summary.get("numbers") or {}).get("trajectories")
            if isinstance(summary.get("numbers"), dict)
            else None
        )
        traj_path = path / (traj_name if isinstance(traj_name, str) else "trajectories.json")
        if traj_path.is_file():
            try:
                sec.trajectories = normalize_trajectories(json.loads(traj_path.read_text()))
            except (json.JSONDecodeError, UnicodeDecodeError):
                sec.trajectories = None
        return sec
    failed_path = path / FAILED_FILE
    if failed_path.is_file():
        try:
            info = json.loads(failed_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            info = {}
        return StudySection(
            str(info.get("study") or path.name),
            path,
            error=str(info.get("error") or "the study failed"),
            seconds=_as_float(info.get("seconds")),
        )
    return StudySection(path.name, path, error=f"no summary.json in {path}")


def normalize_trajectories(data: Any) -> dict[str, Any] | None:
    """``trajectories.json`` as ``{"functions": {name: {"contours", "runs", ...}}}``; a single-function file
    ``{"function", "contours", "runs"}`` is wrapped under its function name. None when neither shape fits."""
    if not isinstance(data, dict):
        return None
    if isinstance(data.get("functions"), dict) and data["functions"]:
        return data
    if isinstance(data.get("contours"), dict) and isinstance(data.get("runs"), dict):
        return {"functions": {str(data.get("function") or "function"): data}}
    return None


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
    lines = ["| rank | algorithm | score | " + " | ".join(f"{w} (s)" for w in workloads) + " |"]
    lines.append("|---:|---|---:|" + "---:|" * len(workloads))
    ranked = sorted(scores, key=lambda a: -(_as_float(scores[a]) or 0.0))
    for i, a in enumerate(ranked, 1):
        row = times.get(a) if isinstance(times.get(a), dict) else {}
        cells = [format_value(_as_float(row.get(w))) if row.get(w) is not None else "—" for w in workloads]
        lines.append(f"| {i} | {a} | {format_value(_as_float(scores[a]))} | " + " | ".join(cells) + " |")
    missing = data.get("missing")
    if isinstance(missing, int) and missing:
        lines += ["", f"{missing} trials had no result (counted as misses)."]
    lines += ["", "Time to target in seconds of training time; — = target missed."]
    return "\n".join(lines) + "\n"


def load_bench(folder: str | Path) -> BenchSection:
    """Read a benchmark report folder (``leaderboard.md``, ``profiles.png`` then ``curves_*.png``, others after)
    or the JSON file of ``descentlab bench score --json`` (a leaderboard table without plots)."""
    path = Path(folder)
    if path.is_file() and path.suffix.lower() == ".json":
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"bench JSON {str(path)!r} is unreadable: {exc}") from None
        return BenchSection(path, markdown=bench_json_markdown(data, repr(str(path))))
    if not path.exists():
        raise ValueError(f"bench {str(path)!r} does not exist")
    if not path.is_dir():
        raise ValueError(
            f"bench {str(path)!r} is neither a folder (`descentlab bench report --out`) nor a .json file "
            "(`descentlab bench score --json`)"
        )
    md = path / "leaderboard.md"
    pngs = sorted(
        path.glob("*.png"), key=lambda p: (p.name != "profiles.png", not p.name.startswith("curves_"), p.name)
    )
    if not md.is_file() and not pngs:
        failed = path / FAILED_FILE
        if failed.is_file():
            try:
                err = str(json.loads(failed.read_text()).get("error", "the benchmark failed"))
            except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
                err = "the benchmark failed"
            return BenchSection(path, error=err)
        raise ValueError(
            f"bench folder {str(path)!r} holds no leaderboard.md or PNG (see `descentlab bench report`)"
        )
    sec = BenchSection(path, markdown=md.read_text() if md.is_file() else "", images=pngs)
    if (path / COMMAND_FILE).is_file():
        sec.command = (path / COMMAND_FILE).read_text().strip()
    return sec


def load_runs(store: str | Path) -> list[dict[str, Any]]:
    """Runs of a store (newest first), as ``Store.list_runs`` gives them; ValueError if the file does not exist."""
    from descentlab.store import Store

    path = Path(store)
    if not path.is_file():
        raise ValueError(f"store {str(path)!r} does not exist")
    with Store(path) as st:
        return st.list_runs(limit=_MAX_RUN_ROWS)


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
        if len(chosen) > _MAX_RUN_ROWS:
            raise ValueError(
                f"--runs selects {len(chosen)} runs; at most {_MAX_RUN_ROWS}, narrow the patterns"
            )
        return [st.load_run(i) for i in chosen]


# ---------------------------------------------------------------------------------------------- formatting


def _as_float(v: Any) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _esc(v: Any) -> str:
    return html.escape(str(v), quote=True)


def format_value(v: Any) -> str:
    """A compact text form of a number (4 significant digits), list (short ones in full) or other value."""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if v is None:
        return "—"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return f"{v:.4g}" if math.isfinite(v) else str(v)
    if isinstance(v, (list, tuple)):
        if all(isinstance(x, (int, float, str, type(None))) and not isinstance(x, bool) for x in v):
            if len(v) <= 8:
                return "[" + ", ".join(format_value(x) for x in v) + "]"
            return "[" + ", ".join(format_value(x) for x in v[:4]) + f", … ] ({len(v)} values)"
        return f"[{len(v)} items]"
    return str(v)


def flatten_numbers(numbers: Any, prefix: str = "") -> list[tuple[str, str]]:
    """``{"a": {"b": 1.5}}`` -> ``[("a.b", "1.5")]``: nested dicts become dotted keys, leaves compact text."""
    rows: list[tuple[str, str]] = []
    if isinstance(numbers, dict):
        for k, v in numbers.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            if isinstance(v, dict) and v:
                rows.extend(flatten_numbers(v, key))
            else:
                rows.append((key, format_value(v)))
    else:
        rows.append((prefix or "value", format_value(numbers)))
    return rows


def seed_order(slide: str) -> int:
    """The first seed number in a slide reference ("seed 003, ..." -> 3), 999 if none: the lecture order."""
    m = re.search(r"seeds?\s+(\d+)", slide or "")
    return int(m.group(1)) if m else 999


def _set_arg(v: Any) -> str:
    """A value as the command line writes it (floats to 12 significant digits: 0.1 * 3 is written 0.3)."""
    if isinstance(v, float):
        return f"{v:.12g}"
    if isinstance(v, (list, tuple)) and all(isinstance(x, (int, float, str)) for x in v):
        return ",".join(_set_arg(x) for x in v)
    if isinstance(v, (dict, list, tuple)):
        return json.dumps(v)
    return str(v).lower() if isinstance(v, bool) or v is None else str(v)


def reproduce_command(summary: dict[str, Any]) -> str:
    """The ``descentlab study`` command that reruns a summary's configuration (``--set`` for changed settings)."""
    name = str(summary.get("study", "?"))
    quick = bool(summary.get("quick"))
    parts = ["descentlab", "study", name] + (["--quick"] if quick else [])
    config = summary.get("config") or {}
    try:
        from descentlab import studies

        base = studies.get(name)
        default = json.loads(json.dumps(dict(base.quick if quick else base.full), default=repr))
    except (ValueError, ImportError):
        default = None
    if isinstance(default, dict) and isinstance(config, dict):
        for k, v in config.items():
            if k == "seeds" and v != default.get("seeds"):
                parts += ["--seeds", str(v)]
            elif k in default and v != default[k]:
                parts += ["--set", f"{k}={_set_arg(v)}"]
    return " ".join(shlex.quote(p) for p in parts)


def png_data_uri(path: Path) -> str:
    """``data:image/png;base64,...`` of a PNG file (other image types by their suffix)."""
    mime = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif"}.get(
        path.suffix.lower(), "application/octet-stream"
    )
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def markdown_to_html(md: str) -> str:
    """Minimal Markdown for the benchmark leaderboard: pipe tables become tables, other lines paragraphs."""
    out: list[str] = []
    lines = md.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        if line.startswith("|"):
            block = []
            while i < len(lines) and lines[i].strip().startswith("|"):
                block.append(lines[i].strip())
                i += 1
            rows = [[c.strip() for c in r.strip("|").split("|")] for r in block]
            rows = [r for r in rows if not all(re.fullmatch(r":?-+:?", c) for c in r if c)]
            if rows:
                head, body = rows[0], rows[1:]
                out.append('<table class="data"><thead><tr>' + "".join(f"<th>{_esc(c)}</th>" for c in head))
                out.append("</tr></thead><tbody>")
                for r in body:
                    out.append("<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in r) + "</tr>")
                out.append("</tbody></table>")
            continue
        if line:
            out.append(f"<p>{_esc(line.lstrip('#').strip())}</p>")
        i += 1
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------- interactive race


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
        out["functions"][fn] = {
            "extent": [c["x"][0], c["x"][-1], c["y"][0], c["y"][-1]],
            "image": _contour_png(c),
            "start": d.get("start"),
            "labels": d.get("labels") or {},
            "runs": {
                m: {str(lr): _finite_points(pts) for lr, pts in (grid or {}).items()}
                for m, grid in (d.get("runs") or {}).items()
            },
            "final": final,
            "best": best,
        }
    return out


_RACE_JS = r"""
(function () {
  var dataEl = document.getElementById("race-data");
  var root = document.getElementById("race");
  if (!dataEl || !root) { return; }
  var data = JSON.parse(dataEl.textContent);
  var names = Object.keys(data.functions);
  if (!names.length) { return; }
  var NS = "http" + "://www.w3.org/2000/svg";
  var W = 400, H = 400;
  var colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
                "#bcbd22", "#7f7f7f"];
  var fnSel = document.getElementById("race-fn");
  var slider = document.getElementById("race-lr");
  var sliderLabel = document.getElementById("race-lr-label");
  var controls = document.getElementById("race-methods");
  var image = document.getElementById("race-image");
  var layer = document.getElementById("race-paths");
  var caption = document.getElementById("race-window");
  var state = {fn: names[0], on: {}};
  names.forEach(function (n) {
    var o = document.createElement("option"); o.value = n; o.textContent = n; fnSel.appendChild(o);
  });
  function lrs(f, m) {
    return Object.keys(f.runs[m]).sort(function (a, b) { return parseFloat(a) - parseFloat(b); });
  }
  function fmt(v) {
    if (typeof v !== "number") { return String(v); }
    return Math.abs(v) < 1e-3 || Math.abs(v) >= 1e4 ? v.toExponential(2) : v.toPrecision(3);
  }
  function build() {
    var f = data.functions[state.fn];
    var methods = Object.keys(f.runs);
    if (!Object.keys(state.on).length) {
      var pick = methods.filter(function (m) { return ["gd", "heavy_ball", "adam"].indexOf(m) >= 0; });
      (pick.length ? pick : methods.slice(0, 3)).forEach(function (m) { state.on[m] = true; });
    }
    while (controls.firstChild) { controls.removeChild(controls.firstChild); }
    var n = 1;
    methods.forEach(function (m, i) {
      var grid = lrs(f, m); n = Math.max(n, grid.length);
      var row = document.createElement("label"); row.className = "race-row";
      var box = document.createElement("input"); box.type = "checkbox"; box.dataset.method = m;
      box.checked = !!state.on[m];
      box.addEventListener("change", function () { state.on[m] = box.checked; draw(); });
      var sw = document.createElement("span"); sw.className = "swatch";
      sw.style.background = colors[i % colors.length];
      var name = document.createElement("span"); name.className = "race-name"; name.textContent = f.labels[m] || m;
      var sel = document.createElement("select"); sel.dataset.method = m; sel.className = "race-lr-select";
      grid.forEach(function (lr) {
        var o = document.createElement("option"); o.value = lr; o.textContent = "lr " + lr; sel.appendChild(o);
      });
      sel.value = grid.indexOf(f.best[m]) >= 0 ? f.best[m] : grid[Math.floor((grid.length - 1) / 2)];
      sel.addEventListener("change", draw);
      var fin = document.createElement("span"); fin.className = "race-final"; fin.dataset.method = m;
      row.appendChild(box); row.appendChild(sw); row.appendChild(name); row.appendChild(sel); row.appendChild(fin);
      controls.appendChild(row);
    });
    slider.max = String(n - 1); slider.value = String(Math.floor((n - 1) / 2));
    image.setAttribute("href", f.image);
    var e = f.extent;
    caption.textContent = state.fn + ": x in [" + e[0] + ", " + e[1] + "], y in [" + e[2] + ", " + e[3] + "]";
    draw();
  }
  function draw() {
    var f = data.functions[state.fn], e = f.extent;
    function px(p) {
      var x = (p[0] - e[0]) / (e[1] - e[0]) * W, y = (1 - (p[1] - e[2]) / (e[3] - e[2])) * H;
      x = Math.max(-W, Math.min(2 * W, x)); y = Math.max(-H, Math.min(2 * H, y));
      return x.toFixed(1) + "," + y.toFixed(1);
    }
    while (layer.firstChild) { layer.removeChild(layer.firstChild); }
    var methods = Object.keys(f.runs);
    methods.forEach(function (m, i) {
      var sel = controls.querySelector("select[data-method='" + m + "']");
      var fin = controls.querySelector("span.race-final[data-method='" + m + "']");
      var lr = sel.value, pts = f.runs[m][lr] || [];
      var v = (f.final[m] || {})[lr];
      fin.textContent = v === undefined ? "" : "final f = " + fmt(v);
      if (!state.on[m] || pts.length < 2) { return; }
      var line = document.createElementNS(NS, "polyline");
      line.setAttribute("class", "traj-path"); line.dataset.method = m;
      line.setAttribute("points", pts.map(px).join(" "));
      line.setAttribute("stroke", colors[i % colors.length]);
      layer.appendChild(line);
      var end = pts[pts.length - 1].map(Number), c = px(end).split(",");
      var dot = document.createElementNS(NS, "circle");
      dot.setAttribute("cx", c[0]); dot.setAttribute("cy", c[1]); dot.setAttribute("r", "3.5");
      dot.setAttribute("fill", colors[i % colors.length]); layer.appendChild(dot);
    });
    if (f.start) {
      var s = px(f.start).split(",");
      var st = document.createElementNS(NS, "circle");
      st.setAttribute("cx", s[0]); st.setAttribute("cy", s[1]); st.setAttribute("r", "5");
      st.setAttribute("class", "race-start"); layer.appendChild(st);
    }
    root.dataset.paths = String(layer.querySelectorAll(".traj-path").length);
  }
  slider.addEventListener("input", function () {
    var k = parseInt(slider.value, 10);
    controls.querySelectorAll("select.race-lr-select").forEach(function (sel) {
      sel.selectedIndex = Math.min(k, sel.options.length - 1);
    });
    sliderLabel.textContent = "grid point " + (k + 1) + " of each method's lr grid";
    draw();
  });
  fnSel.addEventListener("change", function () { state.fn = fnSel.value; build(); });
  build();
})();
"""


def _race_html(payload: dict[str, Any]) -> str:
    data = json.dumps(payload, separators=(",", ":"), default=str).replace("</", "<\\/")
    return f"""
<div class="race" id="race">
  <h3>Play: pick optimizers and learning rates</h3>
  <p class="hint">Precomputed deterministic trajectories from the study (each method over its own lr grid).
  Tick methods, pick a learning rate per method, or move the slider to step every method through its grid.</p>
  <div class="race-controls">
    <label>function <select id="race-fn"></select></label>
    <label>lr <input type="range" id="race-lr" min="0" max="0" step="1" value="0"></label>
    <span id="race-lr-label">middle of each method's lr grid (or its best lr)</span>
  </div>
  <div class="race-body">
    <svg id="race-svg" viewBox="0 0 400 400" width="400" height="400" role="img" aria-label="trajectories">
      <image id="race-image" x="0" y="0" width="400" height="400" preserveAspectRatio="none" href=""></image>
      <g id="race-paths"></g>
    </svg>
    <div id="race-methods"></div>
  </div>
  <p class="hint" id="race-window"></p>
  <script type="application/json" id="race-data">{data}</script>
</div>"""


# ---------------------------------------------------------------------------------------------- page

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1d2a44;color:#fff;padding:1.2em 2em}header h1{margin:0 0 .3em 0;font-size:1.6em}
header p{margin:.2em 0;color:#cfd7e6}main{max-width:1100px;margin:0 auto;padding:1em 2em 3em}
nav ul{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:.4em}
nav a{display:inline-block;padding:.2em .6em;border-radius:1em;background:#2c3d61;color:#fff;text-decoration:none;
font-size:.9em}nav a.failed{background:#9b2226}nav a.partial{background:#b26a00}
section{background:#fff;border-radius:8px;padding:1em 1.5em;margin:1.2em 0;box-shadow:0 1px 3px rgba(0,0,0,.08)}
section h2{margin-top:.2em}.slide{color:#555;font-style:italic}.desc{margin:.3em 0 .8em}
.status{font-size:.75em;padding:.15em .5em;border-radius:.8em;vertical-align:middle;margin-left:.5em;color:#fff}
.status.ok{background:#2a9d5c}.status.partial{background:#b26a00}.status.failed{background:#9b2226}
ul.claims{padding-left:0;list-style:none}ul.claims li{margin:.4em 0;padding:.4em .6em;border-left:4px solid #2a9d5c;
background:#f1faf4}ul.claims li.fails{border-color:#9b2226;background:#fdf1f1}.verdict{font-weight:600}
.evidence{display:block;color:#555;font-size:.88em;margin-top:.2em}
figure{margin:.8em 0;text-align:center}figure img{max-width:100%;height:auto;border:1px solid #e3e6ea}
figcaption{font-size:.85em;color:#666}pre.cmd{background:#1d2330;color:#e8ecf3;padding:.6em .8em;border-radius:6px;
overflow-x:auto}.meta{color:#666;font-size:.85em}details{margin:.6em 0}summary{cursor:pointer;font-weight:600}
table.data{border-collapse:collapse;font-size:.85em;margin:.4em 0}table.data td,table.data th{border:1px solid #e0e3e8;
padding:.2em .5em;text-align:left}table.data th{background:#f0f2f5}.scroll{max-height:28em;overflow:auto}
.error{color:#9b2226;white-space:pre-wrap;background:#fdf1f1;padding:.6em;border-radius:6px}
.race{border-top:1px solid #e3e6ea;margin-top:1em}.race-body{display:flex;flex-wrap:wrap;gap:1.2em;align-items:flex-start}
#race-svg{border:1px solid #ccd;background:#fff;flex:none}.race-row{display:flex;align-items:center;gap:.4em;margin:.2em 0}
.swatch{display:inline-block;width:14px;height:4px}.race-name{min-width:7.5em}.race-final{color:#555;font-size:.85em}
.traj-path{fill:none;stroke-width:2;stroke-linejoin:round;opacity:.9}.race-start{fill:#000;stroke:#fff;stroke-width:1.5}
.race-controls{display:flex;gap:1.5em;align-items:center;margin:.5em 0}.hint{color:#666;font-size:.85em}
"""


def _section_id(name: str) -> str:
    return "study-" + re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")


def _study_status(sec: StudySection) -> str:
    if sec.failed:
        return "failed"
    return "ok" if sec.claims_held == len(sec.claims) else "partial"


def _animations(sec: StudySection) -> list[Path]:
    """GIF files a study names among its top-level numbers (e.g. methods-race's ``"gif"``), if present and small."""
    numbers = (sec.summary or {}).get("numbers")
    if sec.folder is None or not isinstance(numbers, dict):
        return []
    out = []
    for v in numbers.values():
        if isinstance(v, str) and v.lower().endswith(".gif") and "/" not in v and "\\" not in v:
            p = sec.folder / v
            if p.is_file() and p.stat().st_size <= _MAX_ANIMATION_BYTES:
                out.append(p)
    return out


def _study_html(sec: StudySection, describe: dict[str, str]) -> str:
    sid = _section_id(sec.name)
    status = _study_status(sec)
    label = {"ok": "all claims hold", "partial": "some claims fail", "failed": "failed"}[status]
    parts = [f'<section class="study" id="{sid}" data-status="{status}">']
    parts.append(f'<h2>{_esc(sec.name)}<span class="status {status}">{label}</span></h2>')
    summary = sec.summary or {}
    slide = summary.get("slide") or ""
    if not slide:
        try:
            from descentlab import studies

            slide = studies.get(sec.name).slide
        except (ValueError, ImportError):
            slide = ""
    if slide:
        parts.append(f'<p class="slide">Lecture slide: {_esc(slide)}</p>')
    if describe.get(sec.name):
        parts.append(f'<p class="desc">{_esc(describe[sec.name])}</p>')
    if sec.failed:
        parts.append(f'<p class="error">{_esc(sec.error or "failed")}</p>')
        parts.append(f'<pre class="cmd"><code>descentlab study {_esc(sec.name)} --quick</code></pre>')
        parts.append("</section>")
        return "\n".join(parts)
    claims = sec.claims
    parts.append(f'<h3>Claims ({sec.claims_held}/{len(claims)} hold)</h3><ul class="claims">')
    for c in claims:
        ok = bool(c.get("holds"))
        parts.append(
            f'<li class="{"holds" if ok else "fails"}"><span class="verdict">{"✓ holds" if ok else "✗ fails"}:</span> '
            f'{_esc(c.get("claim", ""))}<span class="evidence">{_esc(c.get("evidence", ""))}</span></li>'
        )
    parts.append("</ul>")
    for fig in summary.get("figures") or []:
        path = sec.folder / str(fig) if sec.folder else None
        if path is not None and path.is_file():
            parts.append(
                f'<figure><img src="{png_data_uri(path)}" alt="{_esc(path.stem)}">'
                f"<figcaption>{_esc(path.name)}</figcaption></figure>"
            )
        else:
            parts.append(f'<p class="error">figure {_esc(fig)} is missing from the study folder</p>')
    for anim in _animations(sec):
        parts.append(
            f'<figure><img src="{png_data_uri(anim)}" alt="{_esc(anim.stem)} (animation)">'
            f"<figcaption>{_esc(anim.name)} (animation)</figcaption></figure>"
        )
    if sec.trajectories:
        try:
            payload = race_payload(sec.trajectories, summary.get("numbers"))
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            parts.append(f'<p class="error">trajectories.json could not be drawn: {_esc(exc)}</p>')
        else:
            if payload["functions"]:
                parts.append(_race_html(payload))
    rows = flatten_numbers(summary.get("numbers") or {})
    if rows:
        more = len(rows) - _MAX_NUMBER_ROWS
        body = "".join(f"<tr><td>{_esc(k)}</td><td>{_esc(v)}</td></tr>" for k, v in rows[:_MAX_NUMBER_ROWS])
        if more > 0:
            body += f"<tr><td colspan=2>… {more} more in summary.json</td></tr>"
        parts.append(
            f'<details class="numbers"><summary>Numbers ({len(rows)})</summary><div class="scroll">'
            f'<table class="data"><tbody>{body}</tbody></table></div></details>'
        )
    parts.append(f'<pre class="cmd"><code>{_esc(reproduce_command(summary))}</code></pre>')
    meta = []
    if sec.seconds is not None:
        meta.append(f"{sec.seconds:.1f} s")
    meta.append("quick variant" if summary.get("quick") else "full variant")
    meta.append(f"{len(summary.get('runs') or [])} runs")
    parts.append(f'<p class="meta">{" · ".join(meta)}</p></section>')
    return "\n".join(parts)


def _bench_html(bench: BenchSection) -> str:
    parts = ['<section class="bench" id="bench" data-status="%s">' % ("failed" if bench.error else "ok")]
    parts.append("<h2>Benchmark (AlgoPerf rules)</h2>")
    parts.append(
        '<p class="desc">Time to target per workload (training time, evaluation excluded), the AlgoPerf score and '
        "performance profiles (Dahl et al. 2023).</p>"
    )
    if bench.error:
        parts.append(f'<p class="error">{_esc(bench.error)}</p>')
    if bench.markdown:
        parts.append(markdown_to_html(bench.markdown))
    for img in bench.images:
        parts.append(
            f'<figure><img src="{png_data_uri(img)}" alt="{_esc(img.stem)}"><figcaption>{_esc(img.name)}'
            "</figcaption></figure>"
        )
    parts.append(f'<pre class="cmd"><code>{_esc(bench.command)}</code></pre></section>')
    return "\n".join(parts)


def _runs_html(runs: list[dict[str, Any]]) -> str:
    head = ["run", "status", "task", "optimizer", "lr", "steps", "loss", "accuracy", "train time (s)"]
    body = []
    for r in runs:
        cfg, fin = r.get("config") or {}, r.get("final") or {}
        cells = [
            r.get("id"),
            r.get("status"),
            cfg.get("task"),
            cfg.get("optimizer"),
            format_value(cfg.get("lr")),
            format_value(fin.get("step", cfg.get("steps"))),
            format_value(fin.get("loss")),
            format_value(fin.get("accuracy")),
            format_value(fin.get("train_time")),
        ]
        body.append("<tr>" + "".join(f"<td>{_esc('' if c is None else c)}</td>" for c in cells) + "</tr>")
    table = (
        '<div class="scroll"><table class="data"><thead><tr>'
        + "".join(f"<th>{h}</th>" for h in head)
        + "</tr></thead><tbody>"
        + "".join(body)
        + "</tbody></table></div>"
    )
    note = f'<p class="meta">{len(runs)} runs (newest first{", truncated" if len(runs) >= _MAX_RUN_ROWS else ""})</p>'
    return f'<section class="runs" id="runs"><h2>Runs</h2>{note}{table}</section>'


_CURVE_METRICS = (
    ("loss", "validation loss"),
    ("train_loss", "training loss"),
    ("accuracy", "validation accuracy"),
)
_MAX_CURVES = 40


def _run_label(run: Any) -> str:
    cfg = run.config or {}
    return f"{run.id} · {cfg.get('optimizer', '?')} lr={format_value(cfg.get('lr'))}"


def runs_curves_png(runs: list[Any]) -> str | None:
    """Metric histories of the selected runs (validation loss, training loss, accuracy vs step; log scale for
    losses) as a PNG data URI; None when no run recorded any of them. A diverged run is drawn until it leaves the
    window set by the others (losses up to 10x the largest starting loss)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = runs[:_MAX_CURVES]
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


def train_command(config: dict[str, Any]) -> str:
    """The ``descentlab train`` command for a stored run's configuration (task, optimizer, lr, steps, batch size,
    schedule, seed and their ``--set``/``--task-set``/``--schedule-set`` options). Settings the command line cannot
    express (averaging, callbacks, a custom optimizer object) are not included."""
    parts = ["descentlab", "train", "--task", str(config.get("task", "?"))]
    flags = (("optimizer", "--optimizer"), ("lr", "--lr"), ("steps", "--steps"), ("batch_size", "--batch-size"),
             ("schedule", "--schedule"), ("seed", "--seed"), ("eval_every", "--eval-every"),
             ("time_budget", "--time-budget"))  # fmt: skip
    for key, flag in flags:
        if config.get(key) is not None:
            parts += [flag, _set_arg(config[key])]
    for key, flag in (("hparams", "--set"), ("task_kw", "--task-set"), ("schedule_kw", "--schedule-set")):
        for k, v in (config.get(key) or {}).items():
            parts += [flag, f"{k}={_set_arg(v)}"]
    return " ".join(shlex.quote(p) for p in parts)


def _selected_runs_html(runs: list[Any]) -> str:
    parts = ['<section class="selected" id="selected-runs" data-status="ok"><h2>Selected runs</h2>']
    more = f" (curves of the first {_MAX_CURVES})" if len(runs) > _MAX_CURVES else ""
    parts.append(f'<p class="desc">{len(runs)} runs from the store, their metric histories{more}.</p>')
    uri = runs_curves_png(runs)
    if uri:
        parts.append(
            f'<figure><img src="{uri}" alt="metric curves"><figcaption>metric curves</figcaption></figure>'
        )
    else:
        parts.append('<p class="meta">These runs recorded no loss or accuracy history.</p>')
    head = ["run", "status", "task", "optimizer", "lr", "hyper-parameters", "schedule", "seed", "final"]
    body = []
    for r in runs:
        cfg, fin = r.config or {}, r.final or {}
        final = ", ".join(f"{k}={format_value(fin[k])}" for k in ("loss", "accuracy", "step") if k in fin)
        cells = [r.id, r.status, cfg.get("task"), cfg.get("optimizer"), format_value(cfg.get("lr")),
                 json.dumps(cfg.get("hparams") or {}, default=str), cfg.get("schedule") or "—", cfg.get("seed"),
                 final]  # fmt: skip
        body.append("<tr>" + "".join(f"<td>{_esc('' if c is None else c)}</td>" for c in cells) + "</tr>")
    parts.append(
        '<div class="scroll"><table class="data"><thead><tr>'
        + "".join(f"<th>{h}</th>" for h in head)
        + "</tr></thead><tbody>"
        + "".join(body)
        + "</tbody></table></div>"
    )
    shown = runs[:5]
    cmds = "\n".join(f"# {r.id}\n{train_command(r.config or {})}" for r in shown)
    if len(runs) > len(shown):
        cmds += f"\n# … {len(runs) - len(shown)} more: descentlab runs show ID"
    parts.append(f'<pre class="cmd"><code>{_esc(cmds)}</code></pre></section>')
    return "\n".join(parts)


def build_page(
    studies: list[StudySection],
    bench: BenchSection | None = None,
    runs: list[dict[str, Any]] | None = None,
    title: str = "descentlab: a tour of optimization phenomena",
    selected: list[Any] | None = None,
) -> str:
    """The HTML text of the page: header with a table of contents, one section per study (lecture order), the
    selected runs (curves), the benchmark section, and the runs table. Self-contained: no external resources."""
    try:
        from descentlab import studies as registry

        describe = registry.describe()
    except ImportError:
        describe = {}
    ordered = sorted(studies, key=lambda s: (seed_order(str((s.summary or {}).get("slide", ""))), s.name))
    held = sum(s.claims_held for s in ordered)
    total = sum(len(s.claims) for s in ordered)
    failed = sum(s.failed for s in ordered)
    toc = []
    for s in ordered:
        st = _study_status(s)
        badge = "failed" if s.failed else f"{s.claims_held}/{len(s.claims)}"
        toc.append(f'<li><a class="{st}" href="#{_section_id(s.name)}">{_esc(s.name)} · {badge}</a></li>')
    if selected:
        toc.append('<li><a href="#selected-runs">selected runs</a></li>')
    if bench is not None:
        toc.append('<li><a href="#bench">benchmark</a></li>')
    if runs is not None:
        toc.append('<li><a href="#runs">runs</a></li>')
    body = [_study_html(s, describe) for s in ordered]
    if selected:
        body.append(_selected_runs_html(selected))
    if bench is not None:
        body.append(_bench_html(bench))
    if runs is not None:
        body.append(_runs_html(runs))
    script = f"<script>{_RACE_JS}</script>" if any('id="race"' in b for b in body) else ""
    stamp = time.strftime("%Y-%m-%d %H:%M")
    picked = f" · {len(selected)} selected runs" if selected else ""
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{_esc(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<header>
<h1>{_esc(title)}</h1>
<p>{len(ordered)} studies ({failed} failed) · {held}/{total} claims hold{picked} · generated {stamp}</p>
<nav><ul>{"".join(toc)}</ul></nav>
</header>
<main>
{chr(10).join(body)}
</main>
{script}
</body>
</html>
"""


def write_report(
    out: str | Path,
    studies: list[str | Path] | None = None,
    bench: str | Path | None = None,
    store: str | Path | None = None,
    title: str = "descentlab: a tour of optimization phenomena",
    extra: list[StudySection] | None = None,
    run_ids: list[str] | None = None,
) -> Path:
    """Build the page from existing outputs (study folders or folders of them, a bench report folder or scores
    JSON, a store) and write ``<out>/index.html``; returns its path. ``run_ids`` (ids or globs) selects runs of
    ``store`` (default: the default store) for a curves section and restricts the runs table to them. ``extra``
    adds sections built elsewhere."""
    folders: list[Path] = []
    for s in studies or []:
        folders.extend(find_study_folders(s))
    sections = [load_study(f) for f in folders] + list(extra or [])
    if not sections and bench is None and store is None and not run_ids:
        raise ValueError(
            "nothing to report: give --study DIR (repeatable), --runs ID, --bench DIR or --store PATH"
        )
    bench_sec = load_bench(bench) if bench is not None else None
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
    page.write_text(build_page(sections, bench_sec, runs, title, selected=selected), encoding="utf-8")
    return page
