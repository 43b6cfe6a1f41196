"""The benchmark: AlgoPerf's rules (Dahl et al. 2023) on workloads that run on a laptop, and on a cluster via Ray.

Workloads own model, loss, evaluation, target and budget; algorithms own the optimizer, schedule and search space;
the harness owns the clock (``train()``'s ``train_time``, evaluation excluded). ``run_benchmark`` plans, caches and
executes trials; ``performance_profiles`` and ``score`` turn ``times[algorithm][workload]`` into AlgoPerf's numbers;
``score_intervals`` gives them 90 % bootstrap intervals and tie-aware ranks from the raw trial times
(``BenchmarkResult.intervals()``), ``compare_times`` compares two algorithms on one workload
(``BenchmarkResult.compare``), ``null_test`` checks that one algorithm entered twice comes out tied.
"""

from __future__ import annotations

from descentlab.bench.algorithms import (
    ALGORITHMS,
    Algorithm,
    available_algorithms,
    get_algorithm,
    register_algorithm,
)
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
    register_workload,
)

__all__ = [
    "ALGORITHMS",
    "WORKLOADS",
    "Algorithm",
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
    "score_intervals",
    "study_time",
    "time_to_target",
    "trial_key",
]
