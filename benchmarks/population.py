"""Populations vs single runs: member-steps per second of ``descentlab.train_many`` against the same members trained
one after another with ``descentlab.train`` (and against two single-run worker processes on 2 cores).

Run: .venv/bin/python benchmarks/population.py [--quick] [--only TASK ...]
Every measurement runs in its own process (so its peak memory, ru_maxrss, is its own) after a 2-step warm-up of the
same kind. A population's time includes choosing its forward (forward="auto" times vmap / stacked / member after
member once) and its evaluations; the singles run the same steps and evaluations (at step 0 and at the end). The
single-run time is measured on min(M, 4) members and scaled to M. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

# (task, task_kw, optimizer, steps, member counts, batch size or None for the task's)
SPEEDRUN_GPT = {"width": 64, "heads": 4, "depth": 2, "context": 32, "rotary": True, "relu2": True, "qk_norm": True,
                "zero_init": True, "softcap": 15.0}  # fmt: skip
CASES = [
    ("mnist1d_mlp", {}, "adam", 200, (1, 4, 16, 64), None),
    ("mnist1d_cnn", {}, "adam", 100, (1, 4, 16), None),
    ("digits_mlp", {}, "adam", 200, (1, 4, 16), None),
    ("logreg", {}, "adam", 200, (1, 4, 16), None),
    ("modular", {}, "adamw", 100, (1, 8), None),
    ("charlm", SPEEDRUN_GPT, "adamw", 40, (1, 8), 32),
    ("charlm", {}, "adamw", 10, (1, 8), None),
]
QUICK = {"mnist1d_mlp": (1, 16), "mnist1d_cnn": (8,), "digits_mlp": (16,), "logreg": (16,), "modular": (8,),
         "charlm": (8,)}  # fmt: skip


def one(
    kind: str, task: str, task_kw: dict, optimizer: str, steps: int, m: int, batch: int | None, threads: int
):
    """Measure one (kind, case) in this process; returns seconds, member-steps and peak RSS in MiB."""
    import torch

    import descentlab

    torch.set_num_threads(threads)
    t = descentlab.tasks.get(task, **task_kw)
    kw = dict(steps=steps, eval_every=steps, store=False, progress=False, threads=threads, batch_size=batch)
    members = [{"seed": s} for s in range(m)]
    if kind == "population":
        descentlab.train_many(t, optimizer, members[:2], **{**kw, "steps": 2, "eval_every": 2})
        t0 = time.perf_counter()
        runs = descentlab.train_many(t, optimizer, members, **kw)
        sec = time.perf_counter() - t0
        forward = runs[0].config["population"]["forward_used"]
        n = m
    else:
        descentlab.train(t, optimizer, **{**kw, "steps": 2, "eval_every": 2})
        n = min(m, 4) if kind == "single" else m
        t0 = time.perf_counter()
        for s in range(n):
            descentlab.train(t, optimizer, seed=s, **kw)
        sec = time.perf_counter() - t0
        forward = "-"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": sec, "member_steps": n * steps, "rss_mib": rss, "forward": forward}


def _child(args: list[str]) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _two_workers(case: tuple, m: int, kind: str) -> float:
    """Member-steps per second of two worker processes at one thread each, each training m/2 members: as one
    population each (``kind="population"``) or as single runs one after another (``"singles-all"``); the slower
    worker's training time counts."""
    task, kw, opt, steps, _, batch = case
    procs = [subprocess.Popen([sys.executable, __file__, "--child", kind, task, json.dumps(kw), opt, str(steps),
                               str(m // 2), json.dumps(batch), "1"], stdout=subprocess.PIPE, text=True)
             for _ in range(2)]  # fmt: skip
    # each worker times its own training (imports and data loading excluded); they run at the same time
    secs = [json.loads(p.communicate()[0].strip().splitlines()[-1])["seconds"] for p in procs]
    return m * steps / max(secs)


def kernels(members: int = 16, batch: int = 100, reps: int = 300) -> str:
    """Forward + backward of the mnist1d MLP (40-100-100-10) for ``members`` models, three ways on one thread: one
    ``baddbmm`` per layer (forward="stacked"), ``vmap`` of ``F.linear`` (forward="vmap") and the models one after
    another (single runs' arithmetic). Milliseconds, median of 3 blocks of ``reps``: why the MLP's ceiling is low."""
    import torch
    from torch.nn import functional as F

    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    dims = [(40, 100), (100, 100), (100, 10)]
    ws = [torch.randn(members, o, i, generator=g, requires_grad=True) for i, o in dims]
    bs = [torch.randn(members, o, generator=g, requires_grad=True) for _, o in dims]
    x = torch.randn(members, batch, 40, generator=g)
    y = torch.randint(0, 10, (members, batch), generator=g)

    def mlp(h, layers):  # noqa: ANN001, ANN202
        for k, (w, b) in enumerate(layers):
            h = F.linear(h, w, b)
            h = torch.relu(h) if k < len(layers) - 1 else h
        return h

    def stacked() -> None:
        h = x
        for k, (w, b) in enumerate(zip(ws, bs)):
            h = torch.baddbmm(b[:, None], h, w.transpose(1, 2))
            h = torch.relu(h) if k < len(ws) - 1 else h
        F.cross_entropy(h.reshape(-1, 10), y.reshape(-1), reduction="none").view(members, batch).mean(
            1
        ).sum().backward()

    def vmapped() -> None:
        def one(w0, b0, w1, b1, w2, b2, xi, yi):  # noqa: ANN001, ANN202
            return F.cross_entropy(mlp(xi, [(w0, b0), (w1, b1), (w2, b2)]), yi)

        torch.func.vmap(one)(ws[0], bs[0], ws[1], bs[1], ws[2], bs[2], x, y).sum().backward()

    single = [
        (w[0].detach().clone().requires_grad_(), b[0].detach().clone().requires_grad_())
        for w, b in zip(ws, bs)
    ]

    def singles() -> None:
        for m in range(members):
            F.cross_entropy(mlp(x[m], single), y[m]).backward()

    out = _median_ms(
        (("stacked (baddbmm)", stacked), ("vmap", vmapped), ("one after another", singles)), reps
    )
    return "mnist1d MLP forward + backward, {} members, batch {}, 1 thread: {} ms".format(
        members, batch, ", ".join(f"{k} {v:.2f}" for k, v in out.items())
    )


def _median_ms(fns, reps: int) -> dict[str, float]:  # noqa: ANN001
    """Milliseconds per call of each ``(name, fn)``: 20 warm-up calls, then the median of 3 blocks of ``reps``."""
    out = {}
    for name, fn in fns:
        for _ in range(20):
            fn()
        blocks = []
        for _ in range(3):
            t0 = time.perf_counter()
            for _ in range(reps):
                fn()
            blocks.append((time.perf_counter() - t0) / reps * 1e3)
        out[name] = sorted(blocks)[1]
    return out


def conv_kernels(members: int = 16, batch: int = 100, reps: int = 50) -> str:
    """Forward + backward of the mnist1d CNN (3 x Conv1d, 25 channels, linear readout) for ``members`` models on one
    thread: the members as one grouped convolution (``groups=members``, the CNN's natural stacked forward; a
    ``baddbmm`` readout), ``vmap`` of the task's model, and the models one after another. Milliseconds."""
    import torch
    from torch.nn import functional as F

    from descentlab.tasks.mnist1d import ConvNet1d

    torch.set_num_threads(1)
    torch.manual_seed(0)
    nets = [ConvNet1d(25, 40) for _ in range(members)]
    x, y = torch.randn(batch, 40), torch.randint(0, 10, (batch,))
    convs = [[n.convs[i] for i in (0, 2, 4)] for n in nets]
    ws = [torch.stack([c[j].weight for c in convs]).detach().requires_grad_() for j in range(3)]
    bs = [torch.stack([c[j].bias for c in convs]).detach().requires_grad_() for j in range(3)]
    lw = torch.stack([n.linear.weight for n in nets]).detach().requires_grad_()
    lb = torch.stack([n.linear.bias for n in nets]).detach().requires_grad_()

    def grouped() -> None:
        h = x.unsqueeze(1).expand(batch, members, 40)
        for w, b, k in zip(ws, bs, (5, 3, 3)):
            w2 = w.reshape(members * w.shape[1], w.shape[2], k)
            h = torch.relu(F.conv1d(h, w2, b.reshape(-1), stride=2, padding=1, groups=members))
        out = torch.baddbmm(lb[:, None], h.reshape(batch, members, -1).transpose(0, 1), lw.transpose(1, 2))
        F.cross_entropy(out.reshape(-1, 10), y.repeat(members), reduction="none").view(members, batch).mean(
            1
        ).sum().backward()

    params = {k: torch.stack([dict(n.named_parameters())[k] for n in nets]).detach().requires_grad_()
              for k, _ in nets[0].named_parameters()}  # fmt: skip

    def vmapped() -> None:
        def one(p, xi, yi):  # noqa: ANN001, ANN202
            return F.cross_entropy(torch.func.functional_call(nets[0], p, (xi,)), yi)

        torch.func.vmap(one, in_dims=(0, None, None))(params, x, y).sum().backward()

    def singles() -> None:
        for n in nets:
            F.cross_entropy(n(x), y).backward()

    out = _median_ms((("grouped conv", grouped), ("vmap", vmapped), ("one after another", singles)), reps)
    return "mnist1d CNN forward + backward, {} members, batch {}, 1 thread: {} ms".format(
        members, batch, ", ".join(f"{k} {v:.2f}" for k, v in out.items())
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="fewer member counts (one or two per task)")
    p.add_argument("--only", nargs="*", help="task names")
    p.add_argument("--child", nargs="*", help=argparse.SUPPRESS)
    p.add_argument(
        "--kernels", action="store_true", help="only the MLP and CNN forward+backward three ways (ms)"
    )
    a = p.parse_args()
    if a.kernels:
        print(kernels())
        print(conv_kernels())
        return
    if a.child:
        kind, task, kw, opt, steps, m, batch, threads = a.child
        res = one(kind, task, json.loads(kw), opt, int(steps), int(m), json.loads(batch), int(threads))
        print(json.dumps(res))
        return
    print("| task | optimizer | M | forward | population member-steps/s | single runs member-steps/s | ratio | "
          "peak RSS population / single (MiB) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for case in CASES:
        task, kw, opt, steps, ms, batch = case
        if a.only and task not in a.only:
            continue
        label = task + (" (speedrun GPT w64)" if kw else "")
        for m in QUICK.get(task, ms) if a.quick else ms:
            args = [task, json.dumps(kw), opt, str(steps), str(m), json.dumps(batch), "1"]
            pop = _child(["population", *args])
            single = _child(["single", *args])
            rp = pop["member_steps"] / pop["seconds"]
            rs = single["member_steps"] / single["seconds"]
            print(f"| {label} | {opt} | {m} | {pop['forward']} | {rp:.0f} | {rs:.0f} | {rp / rs:.2f}x | "
                  f"{pop['rss_mib']:.0f} / {single['rss_mib']:.0f} |", flush=True)  # fmt: skip
    if not a.only or "mnist1d_mlp" in a.only:
        case = CASES[0]
        rp = _two_workers(case, 16, "population")
        rw = _two_workers(case, 16, "singles-all")
        print(
            f"\nmnist1d_mlp, M = 16 on 2 cores: two population workers (8 members each, 1 thread) {rp:.0f} "
            f"member-steps/s vs two single-run workers (8 runs each) {rw:.0f}: {rp / rw:.2f}x"
        )
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
