"""Run every benchmark in this folder and rewrite docs/performance.md with their printed tables.

Run: make bench   (or .venv/bin/python benchmarks/run_all.py [--only NAME ...]: re-runs those scripts and replaces
just their sections, marked "re-run alone" with the machine and date)
Each script prints Markdown (tables of measured times and ratios against an anchor measured in the same run);
this collects them under one heading each, with the machine, the versions and the command.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DOC = HERE.parent / "docs" / "performance.md"
NEEDS_GPU = {"gpu"}
"""Scripts that measure on CUDA only: skipped (with a line in the document) on a machine without a GPU."""


def machine() -> str:
    """One line on the machine and the versions."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"{cpu}, {os.cpu_count()} cores, {gpu}; Python {platform.python_version()}, torch {torch.__version__}, "
        f"{time.strftime('%Y-%m-%d')}"
    )


def _load() -> str:
    """The 1-minute load average (other processes on a shared machine show here)."""
    return f"{os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "n/a"


def main() -> None:
    """Run the scripts (each in its own process) and write the document."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--only", nargs="*", help="script stems to run (default: all)")
    p.add_argument("--no-write", action="store_true", help="print only; leave docs/performance.md alone")
    args = p.parse_args()
    scripts = sorted(s for s in HERE.glob("*.py") if s.name != Path(__file__).name)
    if args.only:
        scripts = [s for s in scripts if s.stem in args.only]
    sections = []
    import torch

    for script in scripts:
        print(f"== {script.name}", flush=True)
        if script.stem in NEEDS_GPU and not torch.cuda.is_available():
            print("skipped: no GPU here", flush=True)
            sections.append(f"## {script.stem}\n\nCommand: `.venv/bin/python benchmarks/{script.name}` — skipped: this "
                            "machine has no GPU (run it where the device tool lends one).\n")  # fmt: skip
            continue
        t0, load0 = time.perf_counter(), _load()
        proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
        took, load = time.perf_counter() - t0, f"load average {load0} -> {_load()}"
        body = proc.stdout.strip()
        print(body, flush=True)
        if proc.returncode != 0:
            tail = proc.stderr.strip().splitlines()[-5:]
            body += "\n\n**failed** (exit %d):\n\n```\n%s\n```" % (proc.returncode, "\n".join(tail))
            print("\n".join(tail), file=sys.stderr)
        sections.append(
            f"## {script.stem}\n\nCommand: `.venv/bin/python benchmarks/{script.name}` ({took:.0f} s, {load})\n\n"
            f"{body}\n"
        )
    if args.no_write:
        return
    text = DOC.read_text() if DOC.exists() else "# Performance\n\n"
    intro, _, generated = text.partition("<!-- generated -->")
    if args.only and generated:
        # Replace just the sections that ran; the others (and the machine line) stay as the last full run left them.
        head, *old = generated.split("\n## ")
        kept = {sec.split()[0]: "## " + sec.rstrip() + "\n" for sec in old}
        for sec in sections:
            stem = sec.split("\n", 1)[0][3:].strip()
            kept[stem] = sec.replace("\n\n", f"\n\nRe-run alone on {machine()}.\n\n", 1)
        body = head.strip() + "\n\n" + "\n".join(kept[k] for k in sorted(kept))
    else:
        body = f"Machine: {machine()}. Regenerate with `make bench`.\n\n" + "\n".join(sections)
    DOC.write_text(intro.rstrip() + "\n\n<!-- generated -->\n\n" + body)
    print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
