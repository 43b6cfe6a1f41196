"""The ``descentlab`` command line: train, resume, list methods/schedules/tasks, inspect runs.

Bad input gets one line naming the problem on stderr and exit code 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

app = typer.Typer(
    help="descentlab: use, measure and compare training algorithms.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
runs_app = typer.Typer(help="Inspect the runs in the store.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")


def _mount_subcommands() -> None:
    """Mount the benchmark sub-app and the tour/report commands (they live beside their packages)."""
    from descentlab.bench.cli import bench_app
    from descentlab.report.cli import report, tour, verdicts

    app.add_typer(bench_app, name="bench")
    app.command()(tour)
    app.command()(report)
    app.command()(verdicts)


_mount_subcommands()
console = Console()
err_console = Console(stderr=True)

_STATE = {"debug": False}


class UsageError(ValueError):
    """A user-facing problem with the command line (exit code 2)."""


def parse_value(text: str) -> Any:
    """Parse a ``--set`` value: int, float, bool, none, JSON, or a comma-separated tuple of those."""
    t = text.strip()
    if t == "":
        raise UsageError("empty value in --set")
    low = t.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    if t[0] in '[{"':
        try:
            return json.loads(t)
        except json.JSONDecodeError as exc:
            raise UsageError(f"malformed JSON value {text!r}: {exc.msg}") from None
    if "," in t:
        return tuple(parse_value(p) for p in t.split(","))
    for conv in (int, float):
        try:
            return conv(t)
        except ValueError:
            pass
    return t


def parse_sets(items: list[str] | None) -> dict[str, Any]:
    """Turn ``["momentum=0.9", "betas=0.9,0.98"]`` into ``{"momentum": 0.9, "betas": (0.9, 0.98)}``."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key or not key.replace("_", "").replace(".", "").isalnum():
            raise UsageError(f"malformed --set {item!r}; expected key=value, e.g. --set momentum=0.9")
        out[key] = parse_value(value)
    return out


@app.callback()
def _main_options(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
) -> None:
    """descentlab: use, measure and compare training algorithms."""
    _STATE["debug"] = debug


def _names_table(title: str, described: dict[str, str]) -> None:
    table = Table(title=title)
    table.add_column("name", style="bold")
    table.add_column("description")
    for name, desc in described.items():
        table.add_row(Text(name), Text(desc))
    console.print(table)


@app.command()
def optimizers(
    explain: str | None = typer.Option(
        None,
        "--explain",
        help="Show the kernels an optimizer picks on this machine (muon, and the others that orthogonalize).",
    ),
) -> None:
    """List the optimizers in the registry with their source (torch, descentlab, pytorch_optimizer, schedulefree),
    or with --explain NAME the kernels NAME picks on this machine."""
    from descentlab import optim

    if explain is None:  # name, where the implementation comes from, description
        table = Table(title="optimizers")
        table.add_column("name", style="bold")
        table.add_column("source")
        table.add_column("population")
        table.add_column("description")
        source = optim.sources()
        from descentlab.train.population import describe_modes

        modes = describe_modes()  # how each trains in descentlab.train_many (stacked, member, sam, refused)
        for name, desc in optim.describe().items():
            mode = modes.get(name, "member")
            table.add_row(
                Text(name), Text(source.get(name, "descentlab")), Text(mode.split(":")[0]), Text(desc)
            )
        console.print(table)
        return
    from descentlab.optim.orthogonalize import explain_plans

    if explain not in optim.describe():
        raise ValueError(f"unknown optimizer {explain!r} (see `descentlab optimizers`)")
    if explain not in ("muon", "steepest", "normuon", "adamuon", "polargrad"):
        console.print(Text(f"{explain}: one implementation on every machine (no kernel choice to explain)"))
        return
    console.print(Text(f"{explain} orthogonalizes with these kernels on this machine (rule: descentlab.optim."
                       "orthogonalize.choose_plan; DESCENTLAB_KERNELS=measure times them instead):"))  # fmt: skip
    for line in explain_plans():
        console.print(Text(line), soft_wrap=True)


@app.command()
def schedules() -> None:
    """List the learning-rate schedules."""
    from descentlab import schedules as sch

    _names_table("schedules", sch.describe())


@app.command()
def tasks() -> None:
    """List the workloads."""
    from descentlab import tasks as tk

    _names_table("tasks", tk.describe())


def _plain(value: Any) -> str:
    """``value`` as text safe for a terminal: control characters (escape sequences, C1 codes, bidi overrides) a
    shared store may hold are shown as ``\\x1b``-style escapes, never sent to the terminal."""
    import unicodedata

    text = str(value)
    if all(ch.isprintable() for ch in text):
        return text
    return "".join(
        ch
        if ch.isprintable() or unicodedata.category(ch) == "Zs"
        else ch.encode("unicode_escape").decode("ascii")
        for ch in text
    )


def _print_wide(renderable: Any) -> None:
    """Print a table at least as wide as it needs, so that no cell is cut (a terminal wraps long lines)."""
    from rich.measure import Measurement

    need = Measurement.get(console, console.options.update(width=100_000), renderable).maximum
    if need <= console.width:
        console.print(renderable)
        return
    wide = Console(
        file=console.file, width=need, color_system=console.color_system, force_terminal=console.is_terminal
    )
    wide.print(renderable, crop=False)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.5g}"
    return str(v)


def _print_final(run: Any) -> None:
    table = Table(title=Text(_plain(f"run {run.id} · {run.status}")))
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in run.final.items():
        table.add_row(Text(_plain(k)), Text(_plain(_fmt(v))))
    console.print(table)
    if run.note:
        console.print(Text(_plain(run.note), style="yellow"))


@app.command()
def train(
    task: str = typer.Option(..., "--task", "-t", help="Workload name (see `descentlab tasks`)."),
    optimizer: str = typer.Option(
        "adam", "--optimizer", "-o", help="Optimizer name (see `descentlab optimizers`)."
    ),
    lr: str = typer.Option(
        None,
        "--lr",
        help="Learning rate (default: the task's); a comma list (1e-3,3e-3) trains a population.",
    ),
    steps: int = typer.Option(None, "--steps", help="Number of optimizer steps (default: the task's)."),
    time_budget: float = typer.Option(
        None, "--time-budget", help="Stop after this many seconds of training."
    ),
    batch_size: int = typer.Option(None, "--batch-size", help="Mini-batch size (default: the task's)."),
    schedule: str = typer.Option(
        None, "--schedule", help="Learning-rate schedule (see `descentlab schedules`)."
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed (data order, initialization)."),
    seeds: str = typer.Option(
        None,
        "--seeds",
        help="Train a population: seeds as a list or ranges, e.g. 0-15 or 0,3,7-9 (x every --lr).",
    ),
    eval_every: int = typer.Option(None, "--eval-every", help="Evaluate every N steps."),
    run_id: str = typer.Option(
        None, "--run-id", help="Name of the run in the store (letters, digits, '.', '_', '-')."
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace an existing run with this --run-id (its rows and checkpoints)."
    ),
    checkpoint_every: int = typer.Option(
        None, "--checkpoint-every", help="Checkpoint every N steps (resumable)."
    ),
    sets: list[str] = typer.Option(None, "--set", help="Optimizer hyper-parameter key=value (repeatable)."),
    task_sets: list[str] = typer.Option(None, "--task-set", help="Task option key=value (repeatable)."),
    schedule_sets: list[str] = typer.Option(
        None, "--schedule-set", help="Schedule option key=value (repeatable)."
    ),
    store: Path = typer.Option(
        None, "--store", help="Store path (default $DESCENTLAB_STORE or runs/descentlab.db)."
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide the progress bar."),
    threads: str = typer.Option(
        "auto",
        "--threads",
        help="Torch threads: auto (one for small models, else the idle cores) or a count.",
    ),
    precision: str = typer.Option(
        "fp32",
        "--precision",
        help="fp32, or bf16 (forward and loss under torch.autocast; fast on GPUs and AMX).",
    ),
) -> None:
    """Train a task with an optimizer, store the run and print a summary."""
    from descentlab import optim
    from descentlab import schedules as sch
    from descentlab import tasks as tk
    from descentlab.train import train as run_train
    from descentlab.train.config import check_seed

    # Validate names up front so a typo costs nothing.
    check_seed(seed, "--seed")
    lrs = parse_floats(lr, "--lr")
    tk._REGISTRY.factory(task)
    optim.registry._REGISTRY.factory(optimizer)
    if schedule:
        sch._REGISTRY.factory(schedule)
    if seeds is not None or len(lrs) > 1:
        seed_list = parse_seeds(seeds) if seeds is not None else [seed]
        _train_population(
            task, optimizer, [{"seed": sd, "lr": x} for x in lrs for sd in seed_list], hparams=parse_sets(sets),
            schedule=schedule, schedule_kw=parse_sets(schedule_sets), steps=steps, time_budget=time_budget,
            batch_size=batch_size, eval_every=eval_every, device=device, store=store, population_id=run_id,
            task_kw=parse_sets(task_sets), checkpoint_every=checkpoint_every, progress=not no_progress,
            overwrite=overwrite, threads=threads, precision=precision,
        )  # fmt: skip
        return
    run = run_train(
        task,
        optimizer=optimizer,
        lr=lrs[0],
        hparams=parse_sets(sets),
        schedule=schedule,
        schedule_kw=parse_sets(schedule_sets),
        steps=steps,
        time_budget=time_budget,
        batch_size=batch_size,
        seed=seed,
        eval_every=eval_every,
        device=device,
        store=store,
        run_id=run_id,
        task_kw=parse_sets(task_sets),
        checkpoint_every=checkpoint_every,
        progress=not no_progress,
        overwrite=overwrite,
        threads=threads,
        precision=precision,
    )
    _print_final(run)
    if run.status == "interrupted":
        raise typer.Exit(128 + (getattr(run, "signal", None) or 2))  # 130 after Ctrl-C, 143 after SIGTERM


def parse_floats(text: str | None, option: str) -> list[float | None]:
    """``"1e-3,3e-3"`` -> ``[0.001, 0.003]`` (None -> ``[None]``); UsageError naming the bad value."""
    if text is None:
        return [None]
    out: list[float | None] = []
    for part in text.split(","):
        try:
            out.append(float(part))
        except ValueError:
            raise UsageError(f"{option} takes numbers separated by commas, got {part.strip()!r}") from None
    return out


def parse_seeds(text: str) -> list[int]:
    """``"0-3,7"`` -> ``[0, 1, 2, 3, 7]``: seeds as a comma list of integers and inclusive ranges (at most 4096)."""
    from descentlab.train.config import check_seed

    out: list[int] = []
    for part in text.split(","):
        lo, sep, hi = part.strip().partition("-")
        try:
            a, b = int(lo), int(hi) if sep else int(lo)
        except ValueError:
            raise UsageError(
                f"--seeds takes integers and ranges like 0-15 or 0,3,7-9, got {part.strip()!r}"
            ) from None
        if b < a or b - a >= 4096:
            raise UsageError(f"--seeds range {part.strip()!r} must go up and hold at most 4096 seeds")
        out.extend(check_seed(sd, "--seeds") for sd in range(a, b + 1))
    if len(set(out)) != len(out) or len(out) > 4096:
        raise UsageError(f"--seeds must name each seed once and at most 4096 in all, got {text!r}")
    return out


def _train_population(task: str, optimizer: str, members: list[dict[str, Any]], **kw: Any) -> None:
    """``descentlab train --seeds/--lr a,b``: the grid as one population; a table of its members."""
    from descentlab.train.population import train_many

    runs = train_many(task, optimizer, members, **kw)
    diverged = sum(r.status == "diverged" for r in runs)
    pop = runs[0].config["population"]
    table = Table(title=Text(f"population {pop['id']} · {len(runs)} members ({pop['mode']}, {pop.get('forward_used')} forward)"
                             f" · {sum(r.status == 'finished' for r in runs)} finished, {diverged} diverged"))  # fmt: skip
    for col in ("id", "seed", "lr", "status", "step", "val loss", "val acc"):
        table.add_column(col)
    for r in runs:
        f = r.final
        cells = (r.id, r.config["seed"], _fmt(r.config["lr"]), r.status, _fmt(f.get("step", "")),
                 _fmt(f.get("loss", "")), _fmt(f.get("accuracy", "")))  # fmt: skip
        table.add_row(*(Text(str(c)) for c in cells))
    console.print(table)
    if any(r.status == "interrupted" for r in runs):
        raise typer.Exit(128 + (getattr(runs[0], "signal", None) or 2))


@app.command()
def resume(
    run_id: str = typer.Argument(..., help="Id of the run to continue."),
    store: Path = typer.Option(None, "--store", help="Store path."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide the progress bar."),
) -> None:
    """Continue a checkpointed run exactly where it stopped."""
    from descentlab.train import resume as run_resume

    run = run_resume(run_id, store=store, progress=not no_progress)
    if not getattr(run, "resumed", True):
        console.print(Text(f"run {run.id} already {run.status}; nothing to resume, nothing changed"))
        return
    _print_final(run)
    if run.status == "interrupted":
        raise typer.Exit(128 + (getattr(run, "signal", None) or 2))


@runs_app.command("list")
def runs_list(
    store: Path = typer.Option(None, "--store", help="Store path."),
    status: str = typer.Option(None, "--status", help="Only runs with this status."),
    limit: int = typer.Option(50, "--limit", help="Show at most this many runs."),
) -> None:
    """List runs, newest first."""
    from descentlab.store import STATUSES, Store

    if status is not None and status not in STATUSES:
        raise UsageError(f"unknown status {status!r}; choose from {', '.join(STATUSES)}")
    with Store(store, read_only=True) as st:
        rows = st.list_runs(status=status, limit=limit)
    table = Table(title=f"runs ({len(rows)})")
    for col in ("id", "status", "task", "optimizer", "lr", "steps", "val loss", "val acc", "population"):
        # ids whole (never cut or wrapped: they are what `runs show` and `resume` take)
        longest = max([len(_plain(r["id"])) for r in rows], default=2) if col == "id" else None
        table.add_column(col, no_wrap=col == "id", min_width=longest)
    for r in rows:
        c, f = r["config"], r["final"]
        if r.get("damaged"):
            r = {**r, "status": f"damaged ({r['damaged']})"}
        pop = c.get("population") if isinstance(c.get("population"), dict) else {}
        cells = (
            r["id"],
            r["status"],
            str(c.get("task")),
            str(c.get("optimizer")),
            _fmt(c.get("lr")),
            _fmt(f.get("step", "")),
            _fmt(f.get("loss", "")),
            _fmt(f.get("accuracy", "")),
            f"{pop.get('id')} [{pop.get('member')}/{pop.get('size')}]" if pop else "",
        )
        # user strings as text, never markup or escapes
        table.add_row(*(Text(_plain(cell)) for cell in cells))
    _print_wide(table)


@runs_app.command("show")
def runs_show(
    run_id: str = typer.Argument(..., help="Run id."),
    store: Path = typer.Option(None, "--store", help="Store path."),
    as_json: bool = typer.Option(
        False, "--json", help="Print the run (config, status, final metrics) as JSON."
    ),
) -> None:
    """Show one run: configuration, status and final metrics."""
    from descentlab.store import Store

    with Store(store, read_only=True) as st:
        run = st.load_run(run_id)
    if as_json:
        d = run.to_dict()
        d["metrics"] = run.metric_names()
        sys.stdout.write(json.dumps(d, indent=2, default=str, allow_nan=True) + "\n")
        return
    console.print(Text.assemble((_plain(run.id), "bold"), f" · {_plain(run.status)}"))
    console.print_json(json.dumps(run.config, default=str), ensure_ascii=True)  # control characters escaped
    _print_final(run)


@runs_app.command("export")
def runs_export(
    run_id: str = typer.Argument(..., help="Run id."),
    csv: Path = typer.Option(..., "--csv", help="CSV file to write (an existing one only with --force)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing CSV file (never the store)."),
    store: Path = typer.Option(None, "--store", help="Store path."),
) -> None:
    """Export a run's metrics as CSV (one row per step)."""
    from descentlab.store import Store

    with Store(store, read_only=True) as st:
        out = st.export_csv(run_id, csv, overwrite=force)
    console.print(Text(f"wrote {out}"))


LANDSCAPE_KINDS = ("line", "plane", "hessian", "trace", "density", "sharpness")


def load_trained_model(run_id: str, store: Path | None = None) -> tuple[Any, Any, dict[str, Any]]:
    """Rebuild a stored run's task and its final model (from ``final.pt``, loaded safely)."""
    import torch

    from descentlab import tasks as tk
    from descentlab.store import Store
    from descentlab.train import checkpoint_dir, load_checkpoint

    with Store(store, read_only=True) as st:  # a missing store is reported, never created
        run = st.load_run(run_id)
        path = checkpoint_dir(st, run_id) / "final.pt"
    if not path.exists():
        raise UsageError(
            f"run {run_id!r} has no final model at {path} (it did not finish, or ran with store=False)"
        )
    ck = load_checkpoint(path)
    task = tk.get(run.config["task"], **run.config.get("task_kw", {}))
    model = task.make_model(int(run.config.get("seed", 0)))
    expected, saved = model.state_dict(), ck.get("model")
    if not isinstance(saved, dict):
        raise UsageError(f"final model of run {run_id!r} at {path} holds no model state")
    for name, ref in expected.items():  # every tensor checked, named, before anything is loaded
        got = saved.get(name)
        if not isinstance(got, torch.Tensor) or got.shape != ref.shape or got.dtype != ref.dtype:
            shown = (
                f"{tuple(got.shape)} {got.dtype}"
                if isinstance(got, torch.Tensor)
                else repr(type(got).__name__)
            )
            raise UsageError(
                f"final model of run {run_id!r} does not fit task {task.name!r}: tensor {name!r} is {shown}, "
                f"the model keeps {tuple(ref.shape)} {ref.dtype}"
            )
    try:
        model.load_state_dict(saved)
    except RuntimeError as exc:
        raise UsageError(
            f"final model of run {run_id!r} does not fit task {task.name!r}: {str(exc)[:200]}"
        ) from None
    model.eval()
    return task, model, run.config


@app.command()
def landscape(
    run_id: str = typer.Argument(..., help="Run whose final model to measure."),
    kind: str = typer.Option("line", "--kind", help="line, plane, hessian, trace, density or sharpness."),
    points: int = typer.Option(31, "--points", help="Grid points per axis (line / plane)."),
    span: float = typer.Option(1.0, "--span", help="Half-width of the line / plane in direction units."),
    samples: int = typer.Option(
        None,
        "--samples",
        help="Training examples used (the first N; default: the task's, 2000 for datasets).",
    ),
    k: int = typer.Option(3, "--k", help="Number of top Hessian eigenvalues."),
    rho: float = typer.Option(0.05, "--rho", help="Radius for sharpness."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random directions / probes."),
    out: Path = typer.Option(None, "--out", help="Output folder (default runs/landscape/RUN_ID)."),
    store: Path = typer.Option(None, "--store", help="Store path."),
) -> None:
    """Measure the geometry around a stored run's final model: figures and numbers (JSON)."""
    from descentlab import landscape as ls
    from descentlab.landscape import plots

    if kind not in LANDSCAPE_KINDS:
        from descentlab._registry import unknown_name_message

        raise UsageError(unknown_name_message("landscape kind", kind, list(LANDSCAPE_KINDS)))
    for name, val in (("points", points), ("samples", samples), ("k", k)):
        if val is not None and val < 1:
            raise UsageError(f"--{name} must be >= 1, got {val}")
    for name, val in (("span", span), ("rho", rho)):
        if not (math.isfinite(val) and val > 0):
            raise UsageError(f"--{name} must be a finite number > 0, got {val}")
    from descentlab.train.config import check_seed

    check_seed(seed, "--seed")
    out_dir = out if out is not None else _landscape_dir(run_id)
    task, trained, _ = load_trained_model(run_id, store)
    try:
        model, criterion, data = task.landscape_problem(trained, samples)
    except ValueError as exc:
        raise UsageError(f"cannot measure the landscape of run {run_id!r}: {exc}") from None
    out_dir.mkdir(parents=True, exist_ok=True)
    numbers: dict[str, Any] = {"run": run_id, "kind": kind, "samples": int(data[0].shape[0])}
    figure = None
    if kind == "line":
        res = ls.line(model, criterion, data, span=(-span, span), points=points, seed=seed)
        _some_finite(res.loss, span)
        numbers.update(alphas=res.alphas.tolist(), loss=res.loss.tolist())
        figure = plots.plot_line(res, out_dir / "line.png")
    elif kind == "plane":
        res = ls.plane(
            model, criterion, data, span=((-span, span), (-span, span)), points=(points, points), seed=seed
        )
        _some_finite(res.loss, span)
        numbers.update(cosine=res.cosine, loss_min=float(res.loss.min()), loss_max=float(res.loss.max()))
        figure = plots.plot_plane(res, out_dir / "plane.png")
    elif kind == "hessian":
        eig = ls.hessian_eigenvalues(model, criterion, data, k=k)
        numbers.update(top_eigenvalues=[float(v) for v in eig.values], hvps=eig.hvps)
    elif kind == "trace":
        est = ls.hessian_trace(model, criterion, data, samples=100, seed=seed)
        numbers.update(trace=est.mean, standard_error=est.standard_error, hvps=est.hvps)
    elif kind == "density":
        dens = ls.hessian_spectral_density(model, criterion, data, seed=seed)
        numbers.update(hvps=dens.hvps)
        figure = plots.plot_spectral_density(dens, out_dir / "density.png")
    else:
        sh = ls.sharpness(model, criterion, data, rho=rho)
        numbers.update(sharpness=sh.value, base_loss=sh.base_loss, perturbed_loss=sh.perturbed_loss, rho=rho)
    from descentlab.safe_write import write_text

    write_text(out_dir / f"{kind}.json", json.dumps(numbers, indent=2))  # atomic, never through a link
    shown = {k2: v for k2, v in numbers.items() if not isinstance(v, list) or len(v) <= 10}
    console.print_json(json.dumps(shown))
    console.print(Text(f"wrote {out_dir / (kind + '.json')}" + (f" and {figure}" if figure else "")))


def _some_finite(loss: Any, span: float) -> None:
    """UsageError when every loss measured is NaN or infinite (the span overflows the model): nothing is written."""
    import numpy as np

    if not np.isfinite(np.asarray(loss, dtype=float)).any():
        raise UsageError(
            f"every loss is NaN or infinite at --span {span:g} (the model overflows); use a smaller --span"
        )


def _landscape_dir(run_id: str) -> Path:
    """``runs/landscape/<run_id>``; UsageError when the run id is not a valid name (a path would leave the folder)."""
    from descentlab.store import validate_run_id

    try:
        validate_run_id(run_id)
    except ValueError as exc:
        raise UsageError(
            f"{exc} (so it cannot name a folder under runs/landscape/; pass --out DIR)"
        ) from None
    return Path("runs/landscape") / run_id


@app.command("studies")
def studies_list() -> None:
    """List the studies (one per phenomenon from the lectures)."""
    from descentlab import studies as stds

    _names_table("studies", stds.describe())


@app.command("study")
def study(
    name: str = typer.Argument(..., help="Study name (see `descentlab studies`)."),
    quick: bool = typer.Option(False, "--quick", help="The small variant (<= 60 s on 2 cores)."),
    sets: list[str] = typer.Option(None, "--set", help="Override a study setting key=value (repeatable)."),
    seeds: int = typer.Option(None, "--seeds", help="Number of seeds."),
    out: Path = typer.Option(None, "--out", help="Output folder (default runs/studies/NAME)."),
    store: Path = typer.Option(None, "--store", help="Store path."),
    predictions: bool = typer.Option(
        False, "--predictions", help="Print the declared predictions (version, hash, design) and run nothing."
    ),
    sequential: bool = typer.Option(
        None,
        "--sequential/--fixed",
        help="Blocks of seeds until decided (needs seed_blocks) / all seeds at once.",
    ),
    split_half: bool = typer.Option(
        False, "--split-half", help="Twice the seeds; each prediction judged again on the second half."
    ),
) -> None:
    """Run a study: its figures, summary.json and the lecture's claims checked against the numbers."""
    from descentlab import studies as stds

    stds.get(name)
    if predictions:
        _print_predictions(stds.predictions_document(name))
        return
    result = stds.run(name, quick=quick, out=out, seeds=seeds, store=store, sequential=sequential,
                      split_half=split_half, **parse_sets(sets))  # fmt: skip
    for table in _verdict_tables(result):
        console.print(table)
    counts = result.verdicts
    holm = (result.summary.get("multiplicity") or {}).get("counts", {}).get("holm")
    adj = (
        f" (Holm: {holm['holds']} hold · {holm['fails']} fail · {holm['inconclusive']} inconclusive)"
        if holm
        else ""
    )
    sh = result.summary.get("split_half")
    half = f"; split halves agree on {sh['agree']} of {len(sh['predictions'])}" if sh else ""
    console.print(
        Text(
            f"{counts['holds']} hold · {counts['fails']} fail · {counts['inconclusive']} inconclusive{adj}{half}; "
            f"figures and summary.json in {result.out}"
        )
    )


def _print_predictions(doc: dict[str, Any]) -> None:
    """The declared predictions of a study, one block each, then their version, hash, history and seed designs."""
    pre = doc["preregistration"]
    console.print(
        Text(f"study {doc['study']} · predictions v{pre['version']} · sha256 {pre['hash']}", style="bold")
    )
    for p in doc["predictions"]:
        margin = f"{p['margin']:g} ({p['margin_source']})" if p["margin"] else "0"
        console.print(Text(f"\n{p['name']} (v{p['version']}): {p['claim']}", style="bold"))
        console.print(
            Text(f"  predicted {p['predicted']} · scale {p['scale']} · test {p['test']} · margin {margin}")
        )
        console.print(Text(f"  per seed: {p['quantity']}"))
        if p["censor"]:
            console.print(Text(f"  censoring: {p['censor']}"))
        console.print(Text(f"  source: {p['source']}"))
    console.print()
    for v in pre["versions"]:
        console.print(Text(f"v{v['version']} {v['date'] or '(undated)'}: {v['changes']}"))
    console.print(Text(f"quick: {doc['quick_design']}"))
    console.print(Text(f"full: {doc['full_design']}"))


_VERDICT_STYLE = {"holds": "green", "fails": "red", "inconclusive": "yellow"}


def _fmt3(x: Any) -> str:
    """A number for a verdict table (3 significant digits; strings such as 'inf' pass through)."""
    return f"{x:.3g}" if isinstance(x, (int, float)) else str(x)


def _verdict_tables(result: Any) -> list[Table]:
    """Rich tables of a study's claims (estimate, 95 % interval, n, verdict), checks and anchors; text, not markup."""
    title = Text(f"study {result.name} · {result.summary['seconds']} s")
    claims = Table(title=title)
    for col in ("claim", "source", "predicted", "estimate [95 % interval]", "n", "verdict"):
        claims.add_column(col)
    for c in result.claims:
        v = c.get("verdict", "holds" if c.get("holds") else "fails")
        lo, hi = (c.get("interval") or [None, None])[:2]
        est = f"{_fmt3(c['mean'])} [{_fmt3(lo)}, {_fmt3(hi)}]" if "mean" in c else c.get("evidence", "")
        claims.add_row(
            Text(c["claim"]),
            Text(str(c.get("source", ""))),
            Text(str(c.get("predicted", ""))),
            Text(est),
            Text(str(c.get("n", ""))),
            Text(v, style=_VERDICT_STYLE.get(v, "")),
        )
    tables = [claims]
    if result.checks:
        checks = Table(title="checks (sanity conditions and identities, not claims)")
        for col in ("check", "passed", "evidence"):
            checks.add_column(col)
        for c in result.checks:
            ok = bool(c["passed"])
            checks.add_row(
                Text(c["check"]),
                Text("yes" if ok else "no", style="green" if ok else "red"),
                Text(str(c.get("evidence", ""))),
            )
        tables.append(checks)
    if result.anchors:
        anchors = Table(title="published anchors")
        for col in ("quantity", "published", "measured [95 % interval]", "ratio", "verdict", "source"):
            anchors.add_column(col)
        for a in result.anchors:
            lo, hi = a["interval"]
            anchors.add_row(
                Text(a["quantity"]),
                Text(_fmt3(a["published"])),
                Text(f"{_fmt3(a['mean'])} [{_fmt3(lo)}, {_fmt3(hi)}]"),
                Text(_fmt3(a["ratio"])),
                Text(a["verdict"]),
                Text(a["source"]),
            )
        tables.append(anchors)
    return tables


@app.command()
def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Folder for the figure and the store."),
    quick: bool = typer.Option(False, "--quick", help="Fewer steps."),
) -> None:
    """Train logreg and mnist1d_mlp with three optimizers; print a comparison table and write a figure."""
    from descentlab.demo import run_demo

    run_demo(out, quick=quick, console=console)


def _error_line(message: object) -> Text:
    """``error: <message>`` with the message as plain text (it may quote user input such as ``[/x]``)."""
    return Text.assemble(("error:", "red"), " ", _plain(message))


def _interrupt_code(exc: BaseException | None) -> int:
    """The exit code of an interrupt: 143 when SIGTERM stopped it, 130 for Ctrl-C (and anything else)."""
    from descentlab.train.interrupt import exit_code

    return exit_code(exc) if isinstance(exc, KeyboardInterrupt) else 130


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app, turning bad input into one line on stderr and exit code 2."""
    args = list(sys.argv[1:] if argv is None else argv)
    head = args[: args.index("--")] if "--" in args else args
    debug = "--debug" in head
    if debug:  # a global option, understood anywhere before `--` (e.g. `descentlab train ... --debug`)
        args = ["--debug", *[a for a in head if a != "--debug"], *args[len(head) :]]
    from descentlab.train import interrupt

    interrupt.LAST_SIGNAL = None
    try:
        rc = app(args=args, prog_name="descentlab", standalone_mode=False)
        if isinstance(rc, int) and not isinstance(rc, bool):  # a typer.Exit(code) inside a command, e.g. 130
            if rc == 130 and interrupt.LAST_SIGNAL:  # typer turns any KeyboardInterrupt into exit 130
                return 128 + interrupt.LAST_SIGNAL
            return rc
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except (ValueError, TypeError) as exc:
        if debug:
            raise
        err_console.print(_error_line(exc), highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt as exc:  # Ctrl-C (130) or SIGTERM (143), also inside a study or tour
        err_console.print("interrupted")
        return _interrupt_code(exc)
    except Exception as exc:  # click's usage errors (typer vendors click; match them by shape)
        if debug:
            raise
        if callable(getattr(exc, "format_message", None)) and hasattr(exc, "exit_code"):
            err_console.print(_error_line(exc.format_message()), highlight=False, soft_wrap=True)
            return 2
        if type(exc).__name__ == "Abort":  # click turns a KeyboardInterrupt into Abort
            return _interrupt_code(exc.__context__)
        err_console.print(_error_line(f"{type(exc).__name__}: {exc}"), highlight=False, soft_wrap=True)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
