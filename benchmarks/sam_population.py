"""SAM in a population: the first step on the stacked parameters at once vs each member's own ``SAM.first_step``.

Run: .venv/bin/python benchmarks/sam_population.py [--members 8] [--steps 150] [--repeats 3]

The same population (mnist1d_mlp, SGD-based SAM, members at two rhos, ``forward="stacked"`` as sam-flatness trains)
is trained with the stacked first step and with the members' own (the population's ``_perturb_stacked`` disabled),
interleaved, ``--repeats`` times each, one torch thread; prints the median wall times and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from descentlab import train_many
from descentlab.train.population import Population


def _time(members: list[dict], steps: int) -> float:
    t0 = time.perf_counter()
    train_many("mnist1d_mlp", "sam", members, steps=steps, eval_every=steps, store=False, progress=False, threads=1,
               forward="stacked", hparams={"momentum": 0.9})  # fmt: skip
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=8)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(1)
    members = [
        {"seed": i % 4, "lr": 0.05, "hparams": {"rho": 0.05 if i % 2 else 0.2}} for i in range(a.members)
    ]
    fast = Population._perturb_stacked
    times: dict[str, list[float]] = {"stacked first step": [], "members' own first step": []}
    _time(members[:2], 5)  # warm-up
    for _ in range(a.repeats):
        Population._perturb_stacked = fast  # type: ignore[method-assign]
        times["stacked first step"].append(_time(members, a.steps))
        Population._perturb_stacked = lambda self, units, way: None  # type: ignore[method-assign]
        times["members' own first step"].append(_time(members, a.steps))
    Population._perturb_stacked = fast  # type: ignore[method-assign]
    med = {k: statistics.median(v) for k, v in times.items()}
    print(
        f"| population (M = {a.members}, {a.steps} steps, mnist1d_mlp, SAM over SGD 0.9) | median s | ratio |"
    )
    print("|---|---:|---:|")
    base = med["members' own first step"]
    for k, v in med.items():
        print(f"| {k} | {v:.2f} | {base / v:.2f}x |")


if __name__ == "__main__":
    main()
