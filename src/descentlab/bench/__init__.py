"""The benchmark: AlgoPerf's rules (Dahl et al. 2023) on workloads that run on a laptop, and on a cluster via Ray.

Workloads own model, loss, evaluation, target and budget; algorithms own the optimizer, schedule and search space;
the harness owns the clock (``train()``'s ``train_time``, evaluation excluded). ``run_benchmark`` plans, caches and
executes trials; ``performance_profiles`` and ``score`` turn ``times[algorithm][workload]`` into AlgoPerf's numbers;
``board_report`` / ``analyze`` (``bench.board``) give what the data can conclude: a paired bootstrap-t over studies
on the restricted-mean best-of-k times, Holm-adjusted pairwise tests, rank intervals and the self-checks (A/A,
spike-in power, minimum detectable effect, time-model audit); ``score_intervals`` keeps the older descriptive
intervals, ``compare_times`` compares two algorithms on one workload (``BenchmarkResult.compare``), ``null_test``
checks that one algorithm entered twice is not separated while a x0.67 spike-in is detected.
"""

from __future__ import annotations

from descentlab.bench.algorithms import (
    ALGORITHMS,
    Algorithm,
    available_algorithms,
    get_algorithm,
    register_algorithm,
)
from descentlab.bench.board import Board, analyze, board_report, paired_test, self_checks
from descentlab.bench.checks import null_test
from descentlab.bench.executors import LocalExecutor, ProcessExecutor, RayExecutor, make_executor
from descentlab.bench.runner import BenchmarkResult, collect, execute, plan, run_benchmark
from descentlab.bench.scoring import performance_profiles, ratios, score
from descentlab.bench.trial import make_spec, run_trial, time_to_target, trial_key
from descentlab.bench.tuning import halton_points, study_time
from descentlab.bench.uncertainty import Comparison, ScoreIntervals, compare_times, mark_ties, score_intervals
from descentlab.bench.workloads import (
    WORKLOADS,
    Workload,
    available_workloads,
    calibrate_hardware,
    get_workload,
    hardware_scale,
    hardware_scales,
    register_workload,
    scale_for,
)

__all__ = [
    "ALGORITHMS",
    "Board",
    "WORKLOADS",
    "Algorithm",
    "analyze",
    "board_report",
    "paired_test",
    "self_checks",
    "BenchmarkResult",
    "Comparison",
    "LocalExecutor",
    "ProcessExecutor",
    "RayExecutor",
    "ScoreIntervals",
    "Workload",
    "available_algorithms",
    "available_workloads",
    "calibrate_hardware",
    "collect",
    "compare_times",
    "execute",
    "get_algorithm",
    "get_workload",
    "halton_points",
    "hardware_scale",
    "hardware_scales",
    "make_executor",
    "make_spec",
    "mark_ties",
    "null_test",
    "performance_profiles",
    "plan",
    "ratios",
    "register_algorithm",
    "register_workload",
    "run_benchmark",
    "run_trial",
    "score",
    "scale_for",
    "score_intervals",
    "study_time",
    "time_to_target",
    "trial_key",
]
