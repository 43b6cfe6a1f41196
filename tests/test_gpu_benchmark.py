"""benchmarks/gpu.py (issue 10's GPU figures) runs its code paths on CPU with small sizes, and refuses CUDA that
is not there with one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu.py"


@pytest.mark.slow  # ~15 s: every row once on CPU
def test_gpu_benchmark_smoke_on_cpu() -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--small", "--reps", "1"],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| ") and "x |" in line]
    assert len(rows) == 6, proc.stdout
    for row in rows:
        ours, anchor = (float(c) for c in row.split("|")[2:4])
        assert ours > 0 and anchor > 0


def test_gpu_benchmark_bad_input_is_one_line() -> None:
    args = ["--device", "tpu"] if torch.cuda.is_available() else []
    proc = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
