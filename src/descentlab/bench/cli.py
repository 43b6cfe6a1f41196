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
from rich.text import Text

bench_app = typer.Typer(
    help="AlgoPerf-style benchmark: workloads with targets and budgets, tuning protocols, profiles, score.",
    no_args_is_help=True,
)
console = Console()

_ALGS = typer.Option("all", "--algorithms", "-a", help="Comma-separated algorithm names, or 'all'.")
_WLS = typer.Option(
    "all", "--workloads", "-w", help="Comma-separated workload names, or 'all' (of the track)."
)
_TRACK = typer.Option(
    "time",
    "--track",
    help="time (AlgoPerf: seconds to target) or steps (fewest steps to target); picks 'all'.",
)
_TUNING = typer.Option(
    "external", "--tuning", help="external (Halton search) or self (one config, 1.5x budget)."
)
_TRIALS = typer.Option(5, "--trials", help="Trials per study (external tuning).")
_STUDIES = typer.Option(
    3,
    "--studies",
    help="Independent studies (external tuning); the paired analysis needs >= 6, the board runs 12.",
)
_SEED = typer.Option(0, "--seed", help="Seed of the Halton draws and of the trials.")
_STORE = typer.Option(None, "--store", help="Store path (default: $DESCENTLAB_STORE or runs/descentlab.db).")
_SCALE = typer.Option(
    None, "--scale", help="Budget factor (default: $DESCENTLAB_BENCH_SCALE, the saved calibration or 1)."
)
_CALIB = Path("runs/bench_hardware.json")
_EXECUTOR = typer.Option("local", "--executor", help="local, processes or ray.")
_WORKERS = typer.Option(2, "--workers", help="Parallel workers (processes / local Ray).")


def _names(text: str, available: list[str], kind: str) -> list[str]:
    if text.strip().lower() == "all":
        return list(available)
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise ValueError(f"no {kind} names given in {text!r}")
    return names


def _plan_args(
    algorithms: str, workloads: str, track: str = "time", tuning: str = "external"
) -> tuple[list[str], list[str]]:
    from descentlab.bench import available_algorithms, available_workloads

    return (
        _names(algorithms, available_algorithms(tuning), "algorithm"),
        _names(workloads, available_workloads(track=track), "workload"),
    )


def _scale(scale: float | None) -> float | dict[str, float]:
    from descentlab.bench.workloads import hardware_scales

    return float(scale) if scale is not None else hardware_scales(_CALIB)


_CI = typer.Option(0.9, "--ci", help="Coverage of the bootstrap intervals (0.9 = 90 %).")


def _print_scores(result, ci: float = 0.9) -> None:  # type: ignore[no-untyped-def]
    from descentlab.bench.board import board_report
    from descentlab.bench.report import protocol_line
    from descentlab.bench.scoring import score
    from descentlab.bench.tuning import study_time

    rep = board_report(result, ci=ci)
    bd, data = rep["board"], rep["data"]
    modeled = {a: {w: study_time(st) for w, st in row.items()} for a, row in data["modeled"].items()}
    scores = score(modeled)
    na = set(data["not_applicable"])
    console.print(Text(protocol_line(result)))
    table = Table(title="AlgoPerf score (descriptive; area under the performance profile, tau_max = 4)")
    table.add_column("rank interval", justify="right")
    table.add_column("algorithm", style="bold")
    table.add_column("score", justify="right")
    for w in result.workloads:
        table.add_column(f"{w} ({result.unit})", justify="right")
    fmt = "{:.0f}" if result.unit == "steps" else "{:.2f}"
    for a in sorted(scores, key=lambda x: (-scores[x], x)):
        cells = ["n/a" if (a, w) in na else fmt.format(modeled[a][w]) if math.isfinite(modeled[a][w]) else "—"
                 for w in result.workloads]  # fmt: skip
        ri = bd.rank_interval.get(a)
        rk = "n/a" if ri is None else (f"{ri[0]}" if ri[0] == ri[1] else f"{ri[0]}-{ri[1]}")
        table.add_row(Text(rk), Text(a), f"{scores[a]:.3f}", *cells)
    console.print(table)
    console.print(Text(rep["markdown"]))
    missing = result.missing()
    if missing:
        console.print(f"[yellow]{len(missing)} trials have no result yet (counted as misses)[/yellow]")


@bench_app.command("run")
def run_cmd(
    algorithms: str = _ALGS,
    workloads: str = _WLS,
    track: str = _TRACK,
    tuning: str = _TUNING,
    trials: int = _TRIALS,
    studies: int = _STUDIES,
    seed: int = _SEED,
    executor: str = _EXECUTOR,
    workers: int = _WORKERS,
    ray_address: str = typer.Option(
        None, "--ray-address", help="Join a Ray cluster ('auto' or ray://host:port)."
    ),
    store: Path = _STORE,
    scale: float = _SCALE,
    ci: float = _CI,
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide the progress bar."),
) -> None:
    """Run (or resume) a benchmark; finished trials are cached in the store and not run again.

    Defaults: external tuning, 5 trials x 3 studies (median over studies of the best trial); --tuning self runs
    each algorithm's default once per study (3 studies) with 1.5x budgets."""
    from descentlab.bench import run_benchmark

    algs, wls = _plan_args(algorithms, workloads, track, tuning)
    t0 = time.perf_counter()
    result = run_benchmark(algs, wls, tuning, trials, studies, seed, executor, workers, ray_address,
                           store=store, scale=_scale(scale), progress=not no_progress)  # fmt: skip
    console.print(f"{result.executed} trials run, {len(result.specs) - result.executed} cached, "
                  f"wall time {time.perf_counter() - t0:.1f} s")  # fmt: skip
    failed = [r for r in result.results.values() if r["status"] == "failed"]
    for r in failed[:5]:
        console.print(Text.assemble(("failed", "red"), f" {r['spec']['algorithm']['name']} on "
                                    f"{r['spec']['workload']['name']}: {r['error']}"))  # fmt: skip
    _print_scores(result)


def _safe_write_text(path: Path, text: str) -> None:
    """``text`` into ``path`` atomically, never through a symbolic link planted there (descentlab.safe_write)."""
    from descentlab.safe_write import write_text

    write_text(path, text)


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
    from descentlab.bench.workloads import scale_for
    from descentlab.store import Store

    alg, wl = get_algorithm(algorithm), get_workload(workload)
    budget = wl.budget * scale_for(_scale(scale), wl.name)
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
        from descentlab.train.config import check_hyperparameters

        # a point no run could use: refused, nothing stored
        kw = alg.train_kwargs(point, step_hint=wl.step_hint)
        check_hyperparameters(kw["optimizer"], kw.get("lr"), dict(kw.get("hparams") or {}))
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
        (f"target reached after {ttt:.0f} steps" if wl.track == "steps" else
         f"target reached after {ttt:.3f} s of training time")
        if math.isfinite(ttt)
        else f"{res['status']}, missed"
    )  # fmt: skip
    console.print(Text.assemble(f"{alg.name} on {wl.name} ({world} process{'es' if world > 1 else ''}): {what}; "
                                f"stored as {summary['run_id']}",
                                (f" {res['error']}" if res["error"] else "", "red")))  # fmt: skip


@bench_app.command("score")
def score_cmd(
    algorithms: str = _ALGS,
    workloads: str = _WLS,
    track: str = _TRACK,
    tuning: str = _TUNING,
    trials: int = _TRIALS,
    studies: int = _STUDIES,
    seed: int = _SEED,
    store: Path = _STORE,
    scale: float = _SCALE,
    ci: float = _CI,
    as_json: bool = typer.Option(False, "--json", help="Print times, scores, intervals and ranks as JSON."),
) -> None:
    """Score a benchmark from the store with bootstrap intervals (give the same options as to `bench run`)."""
    from descentlab.bench import collect, plan
    from descentlab.bench.report import leaderboard_json

    algs, wls = _plan_args(algorithms, workloads, track, tuning)
    result = collect(plan(algs, wls, tuning, trials, studies, seed, _scale(scale)), store)
    if as_json:
        from descentlab.bench.board import board_report
        from descentlab.bench.report import _json_safe

        data = leaderboard_json(result, result.intervals(ci=ci))
        rep = board_report(result, ci=ci)
        data["board"] = _json_safe(
            {**rep["board"].to_dict(), "checks": rep["checks"], "audit": rep["data"]["audit"]}
        )
        console.print_json(json.dumps(data, allow_nan=False))
        return
    _print_scores(result, ci)


@bench_app.command("compare")
def compare_cmd(
    a: str = typer.Argument(..., help="Algorithm A."),
    b: str = typer.Argument(..., help="Algorithm B."),
    workload: str = typer.Option(..., "--workload", "-w", help="One workload."),
    tuning: str = _TUNING,
    trials: int = _TRIALS,
    studies: int = _STUDIES,
    seed: int = _SEED,
    store: Path = _STORE,
    scale: float = _SCALE,
    ci: float = _CI,
    run: bool = typer.Option(
        False, "--run", help="Run the trials the store does not hold yet (cached ones are reused)."
    ),
    executor: str = typer.Option("local", "--executor", help="local, processes or ray (with --run)."),
    workers: int = typer.Option(2, "--workers", help="Parallel workers (with --run)."),
    as_json: bool = typer.Option(False, "--json", help="Print the comparison as JSON."),
) -> None:
    """Is A faster than B on a workload? Time-to-target over studies, the descriptive difference with its interval,
    and the leaderboard's paired test (with >= 6 studies), whose verdict is the one to read.

    `descentlab bench compare muon adamw -w mnist1d_mlp --studies 5 --run`
    """
    from descentlab.bench import collect, plan, run_benchmark

    for name in (a, b):
        from descentlab.bench import get_algorithm

        get_algorithm(name)
    if a == b:
        raise ValueError(
            f"compare needs two different algorithms, got {a!r} twice (for a null test: bench null-test)"
        )
    if run:
        result = run_benchmark([a, b], [workload], tuning, trials, studies, seed, executor, workers, store=store,
                               scale=_scale(scale), progress=not as_json)  # fmt: skip
    else:
        result = collect(plan([a, b], [workload], tuning, trials, studies, seed, _scale(scale)), store)
        if len(result.missing()) == len(result.specs):
            raise ValueError(
                f"the store holds none of the {len(result.specs)} trials of {a} and {b} on {workload} "
                f"({tuning} tuning, {trials} trials x {studies} studies, seed {seed}); add --run to run them"
            )
    cmp = result.compare(a, b, workload, ci=ci)
    from descentlab.bench.board import paired_comparison, paired_comparison_sentence

    paired = paired_comparison(result, a, b, workload, ci=ci)
    if as_json:
        doc = {**cmp.to_dict(), "paired": paired, "missing": len(result.missing())}
        console.print_json(json.dumps(doc, allow_nan=False))
        return
    unit = result.unit
    table = Table(
        title=f"{'steps' if unit == 'steps' else 'time'} to target on {workload} ({unit}; — = missed)"
    )
    table.add_column("study", justify="right")
    table.add_column(a, justify="right")
    table.add_column(b, justify="right")
    for i in range(max(len(cmp.studies_a), len(cmp.studies_b))):
        cell = [
            f"{x[i]:.2f}" if i < len(x) and math.isfinite(x[i]) else "—"
            for x in (cmp.studies_a, cmp.studies_b)
        ]
        table.add_row(str(i), *cell)
    console.print(table)
    console.print(Text("Descriptive (medians over studies of the best trial): " + cmp.sentence()))
    console.print(Text(paired_comparison_sentence(paired)))
    if result.missing():
        console.print(
            f"[yellow]{len(result.missing())} trials have no result yet (counted as misses)[/yellow]"
        )


@bench_app.command("null-test")
def null_test_cmd(
    algorithm: str = typer.Option("nadamw", "--algorithm", "-a", help="The algorithm entered twice."),
    workloads: str = _WLS,
    track: str = _TRACK,
    tuning: str = _TUNING,
    trials: int = _TRIALS,
    studies: int = _STUDIES,
    seed: int = _SEED,
    others: str = typer.Option(
        "", "--others", help="Comma-separated algorithms in the field too ('all': the rest)."
    ),
    store: Path = _STORE,
    scale: float = _SCALE,
    ci: float = _CI,
    executor: str = typer.Option("local", "--executor", help="local, processes or ray."),
    workers: int = typer.Option(2, "--workers", help="Parallel workers."),
    out: Path = typer.Option(None, "--out", help="Also write the result as Markdown to this file."),
) -> None:
    """The null test: one algorithm under two names with different seeds must not be separated, and the x0.67
    spike-in of the twin must be detected (exit 1 otherwise)."""
    from descentlab.bench import available_algorithms, available_workloads
    from descentlab.bench.checks import null_test, null_test_markdown

    wls = _names(workloads, available_workloads(track=track), "workload")
    field = (
        []
        if not others.strip()
        else [o for o in _names(others, available_algorithms(tuning), "algorithm") if o != algorithm]
    )
    t0 = time.perf_counter()
    res = null_test(algorithm, wls, tuning, trials, studies, seed, others=field, ci=ci, executor=executor,
                    workers=workers, store=store, scale=_scale(scale))  # fmt: skip
    md = null_test_markdown(res) + f"\nWall time {time.perf_counter() - t0:.0f} s.\n"
    console.print(Text(md))
    if out is not None:
        from descentlab.safe_write import write_text

        write_text(out, md)  # atomic; never through a planted link
    if not res["passed"]:  # twins separated, or the x0.67 spike-in not detected: the test cannot vouch
        raise typer.Exit(1)


@bench_app.command("sequential")
def sequential_cmd(
    algorithms: str = _ALGS,
    workloads: str = _WLS,
    track: str = _TRACK,
    trials: int = _TRIALS,
    blocks: str = typer.Option(
        "12,18",
        "--blocks",
        help="Study counts of the looks, increasing (e.g. 12,18); fixed before any trial. A look needs pairs x 2/2^S <= (1 - ci) / looks to separate anything.",
    ),
    seed: int = _SEED,
    executor: str = _EXECUTOR,
    workers: int = _WORKERS,
    store: Path = _STORE,
    scale: float = _SCALE,
    ci: float = _CI,
    replay: bool = typer.Option(
        False, "--replay", help="Run no trial: judge what the store holds (a missing trial is an error)."
    ),
    out: Path = typer.Option(None, "--out", help="Also write the result as Markdown (and .json beside it)."),
) -> None:
    """External-tuning board in blocks of studies with a stopping rule declared in advance: after each block the
    running entrants are analysed at (1 - ci) / looks; an entrant whose pairs are all separated gets no more studies
    (the baseline always does). With --replay, the rule is replayed on trials already in the store."""
    from descentlab.bench import collect, plan
    from descentlab.bench.board import MIN_STUDIES, board_data, check_blocks, sequential_board
    from descentlab.bench.runner import execute

    try:
        looks = check_blocks([int(x) for x in blocks.split(",") if x.strip()])
    except ValueError:
        raise ValueError(
            f"--blocks must be increasing study counts starting at >= {MIN_STUDIES}, got {blocks!r}"
        ) from None
    algs, wls = _plan_args(algorithms, workloads, track, "external")
    base = "nadamw" if "nadamw" in algs else algs[0]
    sc = _scale(scale)
    t0 = time.perf_counter()

    def fetch(entrants: list[str], studies: int):  # type: ignore[no-untyped-def]
        specs = plan(entrants, wls, "external", trials, studies, seed, sc)
        if replay:
            result = collect(specs, store)
            if result.missing():
                raise ValueError(
                    f"--replay: {len(result.missing())} trials of {len(entrants)} entrants x {studies} studies are "
                    "not in the store; run without --replay"
                )
        else:
            result = execute(specs, executor, workers, store=store, progress=False)
        d = board_data(result)
        return d["modeled"], d["budgets"], d["not_applicable"]

    sq = sequential_board(fetch, algs, looks, base, ci=ci)
    md = sq["markdown"] + f"\nWall time {time.perf_counter() - t0:.0f} s.\n"
    console.print(Text(md))
    if out is not None:
        from descentlab.safe_write import write_text

        write_text(out, md)
        keep = {k: v for k, v in sq.items() if k != "markdown"}
        write_text(out.with_suffix(".json"), json.dumps(keep, indent=1, default=str))


@bench_app.command("report")
def report_cmd(
    algorithms: str = _ALGS,
    workloads: str = _WLS,
    track: str = _TRACK,
    tuning: str = _TUNING,
    trials: int = _TRIALS,
    studies: int = _STUDIES,
    seed: int = _SEED,
    store: Path = _STORE,
    scale: float = _SCALE,
    ci: float = _CI,
    out: Path = typer.Option(Path("runs/bench_report"), "--out", help="Output folder."),
) -> None:
    """Write leaderboard.md/.json (intervals, ties), profiles.png, times.png and curves_<workload>.png (same options
    as `bench run`)."""
    from descentlab.bench import collect, plan
    from descentlab.bench.report import write_report

    algs, wls = _plan_args(algorithms, workloads, track, tuning)
    result = collect(plan(algs, wls, tuning, trials, studies, seed, _scale(scale)), store)
    for p in write_report(result, out, ci=ci):
        console.print(Text(str(p)))


@bench_app.command("calibrate")
def calibrate_cmd(
    hardware: bool = typer.Option(
        False, "--hardware", help="Measure this machine's budget factor and save it."
    ),
    targets: bool = typer.Option(
        False,
        "--targets",
        help="Re-derive targets from the tuned baselines and validate them on fresh seeds.",
    ),
    workloads: str = _WLS,
    track: str = _TRACK,
    baselines: str = typer.Option(
        "nadamw,adamw", "--baselines", help="Target-setting baselines (--targets)."
    ),
    trials: int = typer.Option(8, "--trials", help="Halton trials per baseline and workload (--targets)."),
    repeats: int = typer.Option(3, "--repeats", help="Reruns of the tuned configuration (--targets)."),
    executor: str = typer.Option(
        "processes", "--executor", help="local, processes or ray (the probes, --targets)."
    ),
    workers: int = typer.Option(
        2, "--workers", help="Parallel workers (the probes run this many at a time)."
    ),
    seed: int = _SEED,
    store: Path = _STORE,
    write: Path = typer.Option(
        None,
        "--write",
        help="Merge the derived targets into this targets file (the shipped one: "
        "src/descentlab/bench/targets.json).",
    ),
    markdown: Path = typer.Option(None, "--markdown", help="Also write the validation table to this file."),
) -> None:
    """Calibrate budgets for this hardware (--hardware) and/or derive and validate targets (--targets)."""
    if not hardware and not targets:
        raise ValueError("calibrate needs --hardware and/or --targets")
    if hardware:
        from descentlab.bench import calibrate_hardware

        factors = calibrate_hardware(_CALIB, workers=workers, executor=executor)
        per = ", ".join(f"{w} {v:.3f}" for w, v in factors.items() if w != "*")
        console.print(
            f"budget factors saved to {_CALIB} (each workload's budget is multiplied by its own): {per}; "
            f"geometric mean {factors['*']:.3f} (workloads without a probe)"
        )
    if targets:
        from descentlab.bench import available_algorithms, available_workloads
        from descentlab.bench.targets import derive_targets, validation_markdown, write_targets

        wls = _names(workloads, available_workloads(track=track), "workload")
        base = _names(baselines, available_algorithms("external"), "algorithm")
        t0 = time.perf_counter()
        out = derive_targets(wls, base, trials=trials, repeats=repeats, seed=seed, executor=executor,
                             workers=workers, store=store, scale=_scale(None))  # fmt: skip
        md = validation_markdown(out) + f"\nWall time {time.perf_counter() - t0:.0f} s.\n"
        console.print(Text(md))
        if markdown is not None:
            markdown.parent.mkdir(parents=True, exist_ok=True)
            _safe_write_text(markdown, md)
        if write is not None:
            console.print(Text(f"targets written to {write_targets(out, write)}"))  # the user's path, as text


@bench_app.command("validate-targets")
def validate_targets_cmd(
    workloads: str = _WLS,
    track: str = _TRACK,
    studies: int = typer.Option(
        10,
        "--studies",
        help="Fresh-seed reruns of the target-setting configuration (two thirds must reach it).",
    ),
    criterion: str = typer.Option(
        "steps",
        "--criterion",
        help="steps: median first-hit step <= 2/3 of the step hint (no clock); time: median time <= 2/3 budget.",
    ),
    executor: str = typer.Option("processes", "--executor", help="local, processes or ray."),
    workers: int = typer.Option(2, "--workers", help="Parallel workers."),
    store: Path = _STORE,
    scale: float = _SCALE,
    markdown: Path = typer.Option(None, "--markdown", help="Also write the validation table to this file."),
    recalibrate: bool = typer.Option(
        False,
        "--recalibrate",
        help="Recalibrate a failing target (the documented rule) and validate it on new seeds.",
    ),
    write: Path = typer.Option(
        None, "--write", help="With --recalibrate: merge the re-validated entries into this targets file."
    ),
) -> None:
    """Validate the shipped targets: the target-setting configuration, rerun on 10 fresh seeds, must reach each
    target on two thirds of them with a median first-hit step <= 2/3 of the step hint (``--criterion time``: median
    time-to-target <= 2/3 of the budget); the table shows each accuracy target's binomial sd on the validation set
    (exit 1 if a workload fails)."""
    from descentlab.bench import available_workloads
    from descentlab.bench.targets import validate_targets, validation_markdown, write_targets

    if write is not None and not recalibrate:
        raise ValueError("--write goes with --recalibrate (validation alone changes no target)")
    wls = _names(workloads, available_workloads(track=track), "workload")
    t0 = time.perf_counter()
    out = validate_targets(wls, studies=studies, scale=_scale(scale), executor=executor, workers=workers,
                           store=store, recalibrate=recalibrate, criterion=criterion)  # fmt: skip
    from descentlab.bench import get_workload

    for w, e in out.items():
        wl = get_workload(w)
        e.update(metric=wl.metric, higher_is_better=wl.higher_is_better)
    md = validation_markdown(out) + f"\nWall time {time.perf_counter() - t0:.0f} s.\n"
    console.print(Text(md))
    if markdown is not None:
        markdown.parent.mkdir(parents=True, exist_ok=True)
        _safe_write_text(markdown, md)
    if write is not None:
        console.print(
            Text(f"targets written to {write_targets({w: e['entry'] for w, e in out.items()}, write)}")
        )
    if not all(e["passed"] for e in out.values()):
        raise typer.Exit(1)
