"""``descentlab bench ...``: run, score, report and calibrate the benchmark (a typer sub-app, ``bench_app``).

Mount with ``app.add_typer(bench_app, name="bench")``. Bad input raises ValueError, which the main app turns into
one line on stderr and exit code 2; used standalone, this module prints the line itself.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

bench_app = typer.Typer(
    help="AlgoPerf-style benchmark: workloads with targets and budgets, tuning protocols, profiles, score.",
    no_args_is_help=True,
)
console = Console()

_ALGS = typer.Option("all", "--algorithms", "-a", help="Comma-separated algorithm names, or 'all'.")
_WLS = typer.Option("all", "--workloads", "-w", help="Comma-separated workload names, or 'all'.")
_TUNING = typer.Option(
    "external", "--tuning", help="external (Halton search) or self (one config, 1.5x budget)."
)
_TRIALS = typer.Option(5, "--trials", help="Trials per study (external tuning).")
_STUDIES = typer.Option(3, "--studies", help="Independent studies (external tuning).")
_SEED = typer.Option(0, "--seed", help="Seed of the Halton draws and of the trials.")
_STORE = typer.Option(None, "--store", help="Store path (default: $DESCENTLAB_STORE or runs/descentlab.db).")
_SCALE = typer.Option(
    None, "--scale", help="Budget factor (default: $DESCENTLAB_BENCH_SCALE, the saved calibration or 1)."
)
_CALIB = Path("runs/bench_hardware.json")


def _names(text: str, available: list[str], kind: str) -> list[str]:
    if text.strip().lower() == "all":
        return list(available)
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise ValueError(f"no {kind} names given in {text!r}")
    return names


def _plan_args(algorithms: str, workloads: str) -> tuple[list[str], list[str]]:
    from descentlab.bench import available_algorithms, available_workloads

    return (
        _names(algorithms, available_algorithms(), "algorithm"),
        _names(workloads, available_workloads(), "workload"),
    )


def _scale(scale: float | None) -> float:
    from descentlab.bench import hardware_scale

    return float(scale) if scale is not None else hardware_scale(_CALIB)


def _print_scores(result) -> None:  # type: ignore[no-untyped-def]
    times, scores = result.times(), result.scores()
    table = Table(title="AlgoPerf score (area under the performance profile, tau_max = 4)")
    table.add_column("algorithm", style="bold")
    table.add_column("score", justify="right")
    for w in result.workloads:
        table.add_column(w, justify="right")
    for a in sorted(scores, key=lambda a: -scores[a]):
        cells = [f"{times[a][w]:.2f}" if math.isfinite(times[a][w]) else "—" for w in result.workloads]
        table.add_row(a, f"{scores[a]:.3f}", *cells)
    console.print(table)
    missing = result.missing()
    if missing:
        console.print(f"[yellow]{len(missing)} trials have no result yet (counted as misses)[/yellow]")


@bench_app.command("run")
def run_cmd(
    algorithms: str = _ALGS,
    workloads: str = _WLS,
    tuning: str = _TUNING,
    trials: int = _TRIALS,
    studies: int = _STUDIES,
    seed: int = _SEED,
    executor: str = typer.Option("local", "--executor", help="local, processes or ray."),
    workers: int = typer.Option(2, "--workers", help="Parallel workers (processes / local Ray)."),
    ray_address: str = typer.Option(
        None, "--ray-address", help="Join a Ray cluster ('auto' or ray://host:port)."
    ),
    store: Path = _STORE,
    scale: float = _SCALE,
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide the progress bar."),
) -> None:
    """Run (or resume) a benchmark; finished trials are cached in the store and not run again."""
    from descentlab.bench import run_benchmark

    algs, wls = _plan_args(algorithms, workloads)
    t0 = time.perf_counter()
    result = run_benchmark(algs, wls, tuning, trials, studies, seed, executor, workers, ray_address,
                           store=store, scale=_scale(scale), progress=not no_progress)  # fmt: skip
    console.print(f"{result.executed} trials run, {len(result.specs) - result.executed} cached, "
                  f"wall time {time.perf_counter() - t0:.1f} s")  # fmt: skip
    failed = [r for r in result.results.values() if r["status"] == "failed"]
    for r in failed[:5]:
        console.print(f"[red]failed[/red] {r['spec']['algorithm']['name']} on {r['spec']['workload']['name']}: "
                      f"{r['error']}")  # fmt: skip
    _print_scores(result)


@bench_app.command("trial")
def trial_cmd(
    algorithm: str = typer.Option(..., "--algorithm", "-a", help="One algorithm name."),
    workload: str = typer.Option(
        ..., "--workload", "-w", help="One workload name (its batch size is global)."
    ),
    tuning: str = typer.Option(
        "self", "--tuning", help="self (the default point, 1.5x budget) or external (--hparams, 1x budget)."
    ),
    hparams: str = typer.Option(
        None, "--hparams", help="Search-space point as JSON, e.g. '{\"lr\": 0.003}'."
    ),
    seed: int = _SEED,
    store: Path = _STORE,
    scale: float = _SCALE,
    device: str = typer.Option(
        "auto", "--device", help="auto, cpu or cuda (each rank uses cuda:$LOCAL_RANK)."
    ),
    backend: str = typer.Option(None, "--backend", help="nccl or gloo (default: nccl on GPUs, gloo on CPU)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result summary as JSON."),
) -> None:
    """Run one trial, data-parallel over the ranks when launched by torchrun; rank 0 alone writes the store.

    `torchrun --nproc_per_node=G --no-python descentlab bench trial -a adamw -w mnist1d_mlp`
    """
    import os

    from descentlab.bench import get_algorithm, get_workload
    from descentlab.bench.runner import SELF_TUNING_FACTOR, run_id_for, write_result
    from descentlab.bench.trial import _execute, make_spec, run_distributed_trial
    from descentlab.store import Store

    alg, wl = get_algorithm(algorithm), get_workload(workload)
    budget = wl.budget * _scale(scale)
    try:  # launched by torchrun: one rank of a data-parallel trial, cached under its own key
        world = int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise ValueError(f"WORLD_SIZE must be an integer, got {os.environ['WORLD_SIZE']!r}") from None
    if tuning == "self":
        if hparams is not None:
            raise ValueError(
                "--hparams goes with --tuning external (self-tuning uses the algorithm's default)"
            )
        spec = make_spec(wl, alg, alg.default, seed, budget=budget * SELF_TUNING_FACTOR,
                         step_hint=int(round(wl.step_hint * SELF_TUNING_FACTOR)), tuning="self",
                         world_size=world)  # fmt: skip
    elif tuning == "external":
        if hparams is None:
            raise ValueError("--tuning external needs --hparams (a search-space point as JSON)")
        try:
            point = json.loads(hparams)
        except json.JSONDecodeError as exc:
            raise ValueError(f"malformed --hparams {hparams!r}: {exc.msg}") from None
        if not isinstance(point, dict):
            raise ValueError(f"--hparams must be a JSON object, got {hparams!r}")
        spec = make_spec(wl, alg, point, seed, budget=budget, tuning="external", world_size=world)
    else:
        raise ValueError(f"tuning must be 'self' or 'external', got {tuning!r}")
    if "WORLD_SIZE" in os.environ:
        res = run_distributed_trial(spec, device=device, backend=backend)
    else:
        res = _execute(spec, None, device, False)
    if res is None:  # not rank 0: rank 0 reports and writes
        return
    st = Store(store)
    try:
        write_result(st, res)
    finally:
        st.close()
    ttt = float(res["time_to_target"])
    summary = {
        "run_id": run_id_for(res["key"]), "key": res["key"], "algorithm": alg.name, "workload": wl.name,
        "world_size": world, "status": res["status"], "reached": res["reached"],
        "time_to_target": ttt if math.isfinite(ttt) else None, "error": res["error"],
    }  # fmt: skip
    if as_json:
        console.print_json(json.dumps(summary))
        return
    what = (
        f"target reached after {ttt:.3f} s of training time"
        if math.isfinite(ttt)
        else f"{res['status']}, missed"
    )
    console.print(f"{alg.name} on {wl.name} ({world} process{'es' if world > 1 else ''}): {what}; "
                  f"stored as {summary['run_id']}" + (f" [red]{res['error']}[/red]" if res["error"] else ""))  # fmt: skip


@bench_app.command("score")
def score_cmd(
    algorithms: str = _ALGS,
    workloads: str = _WLS,
    tuning: str = _TUNING,
    trials: int = _TRIALS,
    studies: int = _STUDIES,
    seed: int = _SEED,
    store: Path = _STORE,
    scale: float = _SCALE,
    as_json: bool = typer.Option(False, "--json", help="Print times and scores as JSON."),
) -> None:
    """Score a benchmark from the store (give the same options as to `bench run`)."""
    from descentlab.bench import collect, plan

    algs, wls = _plan_args(algorithms, workloads)
    result = collect(plan(algs, wls, tuning, trials, studies, seed, _scale(scale)), store)
    if as_json:
        times = {
            a: {w: (t if math.isfinite(t) else None) for w, t in row.items()}
            for a, row in result.times().items()
        }
        console.print_json(
            json.dumps({"times": times, "scores": result.scores(), "missing": len(result.missing())})
        )
        return
    _print_scores(result)


@bench_app.command("report")
def report_cmd(
    algorithms: str = _ALGS,
    workloads: str = _WLS,
    tuning: str = _TUNING,
    trials: int = _TRIALS,
    studies: int = _STUDIES,
    seed: int = _SEED,
    store: Path = _STORE,
    scale: float = _SCALE,
    out: Path = typer.Option(Path("runs/bench_report"), "--out", help="Output folder."),
) -> None:
    """Write leaderboard.md, profiles.png and curves_<workload>.png (same options as `bench run`)."""
    from descentlab.bench import collect, plan
    from descentlab.bench.report import write_report

    algs, wls = _plan_args(algorithms, workloads)
    result = collect(plan(algs, wls, tuning, trials, studies, seed, _scale(scale)), store)
    for p in write_report(result, out):
        console.print(str(p))


@bench_app.command("calibrate")
def calibrate_cmd(
    hardware: bool = typer.Option(
        False, "--hardware", help="Measure this machine's budget factor and save it."
    ),
    targets: bool = typer.Option(False, "--targets", help="Re-derive targets with the NAdamW baseline."),
    workloads: str = _WLS,
    trials: int = typer.Option(5, "--trials", help="Baseline trials per workload (--targets)."),
    executor: str = typer.Option("processes", "--executor", help="local, processes or ray (--targets)."),
    store: Path = _STORE,
) -> None:
    """Calibrate budgets for this hardware (--hardware) and/or targets from the tuned baseline (--targets)."""
    if not hardware and not targets:
        raise ValueError("calibrate needs --hardware and/or --targets")
    if hardware:
        from descentlab.bench import calibrate_hardware

        scale = calibrate_hardware(_CALIB)
        console.print(f"budget factor {scale:.3f} saved to {_CALIB} (budgets are multiplied by it)")
    if targets:
        from descentlab.bench import available_workloads
        from descentlab.bench.runner import calibrate_targets

        wls = _names(workloads, available_workloads(), "workload")
        out = calibrate_targets(wls, trials=trials, executor=executor, store=store, scale=_scale(None))
        table = Table(title="NAdamW baseline: best validation value (2/3 budget | full budget)")
        for col in ("workload", "metric", "best @ 2/3 budget", "best @ budget", "shipped target"):
            table.add_column(col)
        from descentlab.bench import get_workload

        for w, v in out.items():
            wl = get_workload(w)
            table.add_row(w, wl.metric, f"{v['best']:.5g}", f"{v['best_full']:.5g}", f"{wl.target:g}")
        console.print(table)
