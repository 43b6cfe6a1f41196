"""Command functions ``tour`` and ``report`` (mounted on the main app with ``app.command()(tour)`` and
``app.command()(report)``). Bad input raises ValueError; the main app prints it on one line with exit code 2."""

from __future__ import annotations

from pathlib import Path

import typer
from rich import get_console

console = get_console()


def tour(
    quick: bool = typer.Option(
        False, "--quick", help="Quick variants of every study (the whole tour in minutes)."
    ),
    out: Path = typer.Option(
        Path("runs/tour"), "--out", help="Output folder (studies/, bench/, tour.db, index.html)."
    ),
    no_bench: bool = typer.Option(False, "--no-bench", help="Skip the small benchmark."),
    only: str = typer.Option(None, "--only", help="Comma-separated study names to run (default: all)."),
    skip: str = typer.Option(
        None, "--skip", help="Comma-separated study names to leave out (e.g. grokking)."
    ),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide the progress bars."),
    jobs: int = typer.Option(
        0,
        "--jobs",
        "-j",
        help="Studies run at once, each in its own process with cores/jobs torch threads, longest first "
        "(0 = one per core, at most 4; 1 = one after another in this process, with each study's progress bar).",
    ),
    force: bool = typer.Option(
        False,
        "--force",
        help="Write into --out even where it holds files no earlier tour wrote (never deleted).",
    ),
    split_half: bool = typer.Option(
        False,
        "--split-half",
        help="Twice the seeds per study; every prediction judged again on the second half.",
    ),
) -> None:
    """Run every study (and a small benchmark) and write one self-contained page, index.html."""
    from rich.text import Text

    from descentlab.report.tour import auto_jobs, run_tour, summary_table

    if jobs < 0:
        raise ValueError(f"--jobs must be >= 0 (0 = one per core), got {jobs}")
    jobs = jobs or auto_jobs()

    result = run_tour(out, quick=quick, bench=not no_bench, only=only, skip=skip, console=console,
                      progress=not no_progress, jobs=jobs, force=force, split_half=split_half)  # fmt: skip
    console.print(summary_table(result))
    for e in result.entries:  # claims that fail or are inconclusive (the tour itself succeeded)
        for claim in e.failed_claims:
            line = Text.assemble(("✗ ", "yellow"), (f"{e.name}:", "yellow"), f" {claim}")
            console.print(line, highlight=False)
    console.print(Text(f"page: {result.page.resolve()}"))


def verdicts(
    folder: Path = typer.Argument(..., help="A tour's --out folder (its studies/*/summary.json are read)."),
) -> None:
    """Print every prediction of a tour as a markdown table: raw verdict, Holm and Benjamini-Hochberg over the whole
    tour, seeds used, and the split halves' verdicts of a --split-half tour."""
    from descentlab.report.tour import verdicts_markdown

    typer.echo(verdicts_markdown(folder), nl=False)


def report(
    runs: list[str] = typer.Option(
        None,
        "--runs",
        help="Run ids or globs (e.g. 'sgd-noise-floor-*'), repeatable or comma-separated: their curves and table.",
    ),
    study: list[Path] = typer.Option(
        None, "--study", help="A study output folder, or a folder of them (repeatable)."
    ),
    bench: list[Path] = typer.Option(
        None,
        "--bench",
        help="A `descentlab bench report` folder (leaderboard.md, PNGs) or a `bench score --json` file "
        "(repeatable: the AlgoPerf leaderboard and the fewest-steps track each get a section).",
    ),
    store: Path = typer.Option(
        None, "--store", help="The store: its runs are listed at the end (default store with --runs)."
    ),
    out: Path = typer.Option(..., "--out", help="Folder for index.html."),
    title: str = typer.Option("descentlab report", "--title", help="Page title."),
) -> None:
    """Build the tour's page from existing outputs (no training): studies, selected runs, a benchmark, a store."""
    from descentlab.report.render import write_report

    ids = [x.strip() for r in runs or [] for x in r.split(",") if x.strip()]
    page = write_report(out, list(study or []), bench=list(bench or []) or None, store=store, title=title,
                        run_ids=ids or None)  # fmt: skip
    console.print(f"page: {page.resolve()}", markup=False, highlight=False)
