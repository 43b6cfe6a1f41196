"""The tour's control flow with stand-in studies (no training): a raising study is shown as failed and the tour
goes on; stale outputs are removed; the CLI functions mount on a typer app."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from descentlab.report import tour as tour_mod


@pytest.fixture
def fake_studies(monkeypatch: pytest.MonkeyPatch, study_maker: Any) -> list[str]:
    """Replace the studies registry seen by the tour with two stand-ins: one writes its outputs, one raises."""
    from descentlab import studies

    fakes = {
        "fake-good": SimpleNamespace(
            slide="seed 002, 'Good'", description="writes a figure", quick={}, full={}
        ),
        "fake-bad": SimpleNamespace(slide="seed 001, 'Bad'", description="raises", quick={}, full={}),
    }
    calls: list[str] = []

    def run(name: str, quick: bool, out: Path, store: Any, progress: bool) -> Any:
        calls.append(name)
        assert quick and store is not None
        if name == "fake-bad":
            raise RuntimeError("the study broke")
        folder = study_maker(out.parent / "_tmp", name, fakes[name].slide, [True, True])
        for f in folder.iterdir():
            f.rename(out / f.name)
        summary = json.loads((out / "summary.json").read_text())
        return SimpleNamespace(claims=summary["claims"], summary=summary)

    monkeypatch.setattr(studies, "available", lambda: list(fakes))
    monkeypatch.setattr(studies, "get", lambda n: fakes[n])
    monkeypatch.setattr(studies, "describe", lambda: {k: v.description for k, v in fakes.items()})
    monkeypatch.setattr(studies, "run", run)
    return calls


def test_tour_continues_after_a_failed_study(tmp_path: Path, fake_studies: list[str]) -> None:
    out = tmp_path / "tour"
    stale = out / "studies" / "fake-bad"
    stale.mkdir(parents=True)
    (stale / "summary.json").write_text("{}")  # an old success must not hide this run's failure
    (out / tour_mod.MANIFEST).write_text('{"files": ["studies/fake-bad/summary.json"]}')  # an earlier tour's
    res = tour_mod.run_tour(out, quick=True, bench=False, progress=False)
    assert fake_studies == ["fake-bad", "fake-good"]  # lecture order: seed 001 first
    assert [(e.name, e.status) for e in res.entries] == [("fake-bad", "failed"), ("fake-good", "ok")]
    assert res.entries[1].claims_held == res.entries[1].claims_total == 2
    assert "RuntimeError: the study broke" in res.entries[0].error
    text = res.page.read_text(encoding="utf-8")
    assert res.page == out / "index.html" and (out / "tour.db").is_file()
    assert 'id="study-fake-bad" data-status="failed"' in text and "the study broke" in text
    assert 'id="study-fake-good" data-status="ok"' in text and 'id="runs"' in text
    assert not (stale / "summary.json").exists() and (stale / "failed.json").is_file()
    table = tour_mod.summary_table(res)
    assert table.row_count == 3  # two studies and the total


def test_tour_only_skip(tmp_path: Path, fake_studies: list[str]) -> None:
    tour_mod.run_tour(tmp_path / "t", quick=True, bench=False, skip="fake-bad", progress=False)
    assert fake_studies == ["fake-good"]
    with pytest.raises(ValueError, match="no study left"):
        tour_mod.run_tour(tmp_path / "t", quick=True, bench=False, skip="fake-bad,fake-good", progress=False)


def test_cli_functions_mount_and_report(fabricated: dict[str, Path]) -> None:
    import typer
    from typer.testing import CliRunner

    from descentlab.report.cli import report, tour

    app = typer.Typer()
    app.command()(tour)
    app.command()(report)
    out = fabricated["tmp"] / "page"
    result = CliRunner().invoke(
        app,
        [
            "report",
            "--study",
            str(fabricated["studies"]),
            "--bench",
            str(fabricated["bench"]),
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert (out / "index.html").is_file() and "page:" in result.output
    sel = CliRunner().invoke(
        app, ["report", "--runs", "run-0,run-2", "--store", str(fabricated["store"]), "--out", str(out / "r")]
    )
    assert sel.exit_code == 0, sel.output
    text = (out / "r" / "index.html").read_text(encoding="utf-8")
    assert ">run-0<" in text and ">run-2<" in text and ">run-1<" not in text
    bad = CliRunner().invoke(app, ["tour", "--only", "no-such-study", "--no-bench", "--out", str(out)])
    assert isinstance(bad.exception, ValueError) and "no-such-study" in str(bad.exception)


def test_failed_benchmark_is_shown_and_tour_finishes(
    tmp_path: Path, fake_studies: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import descentlab.bench as bench

    def broken(*a: Any, **k: Any) -> Any:
        raise RuntimeError("no workers")

    monkeypatch.setattr(bench, "run_benchmark", broken)
    res = tour_mod.run_tour(tmp_path / "t", quick=True, bench=True, only="fake-good", progress=False)
    assert [(e.name, e.status) for e in res.entries] == [("fake-good", "ok"), ("benchmark", "failed")]
    text = res.page.read_text(encoding="utf-8")
    assert 'id="bench" data-status="failed"' in text and "RuntimeError: no workers" in text


@pytest.mark.slow
def test_real_quick_tour_with_benchmark(tmp_path: Path) -> None:
    """One real quick study and the real small benchmark (about 20-40 s on 2 cores)."""
    res = tour_mod.run_tour(tmp_path / "t", quick=True, bench=True, only="batch-size", progress=False)
    assert [(e.name, e.status) for e in res.entries] == [("batch-size", "ok"), ("benchmark", "ok")]
    assert res.entries[0].claims_total > 0  # whatever the verdicts are: the machinery, not the outcome
    note = res.entries[1].note  # what the small board can conclude, never a rank it cannot support
    assert (
        note.startswith("2 entrants x 2 workloads x 1 studies x 3 trials: ")
        and "minimum detectable effect" in note
    )
    assert "not separated" in note and "score" not in note
    text = res.page.read_text(encoding="utf-8")
    assert 'id="study-batch-size" data-status="' in text and 'id="bench" data-status="ok"' in text
    assert "<td>sgd_nesterov</td>" in text  # the leaderboard table
    assert (
        tmp_path / "t" / "bench" / "profiles.png"
    ).is_file() and "bench-" in text  # bench runs in the table


def test_tour_skips_benchmark_when_not_importable(
    tmp_path: Path, fake_studies: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "descentlab.bench", None)  # `import descentlab.bench` raises ImportError
    res = tour_mod.run_tour(tmp_path / "t", quick=True, bench=True, only="fake-good", progress=False)
    assert [(e.name, e.status) for e in res.entries] == [("fake-good", "ok"), ("benchmark", "skipped")]
    text = res.page.read_text(encoding="utf-8")
    assert 'id="bench"' not in text and not (tmp_path / "t" / "bench").exists()
    import io

    from rich.console import Console

    buf = io.StringIO()
    Console(file=buf, width=140).print(tour_mod.summary_table(res))
    assert "skipped" in buf.getvalue() and "not importable" in buf.getvalue()


def test_interrupt_keeps_what_ran_and_progress_bars_nest(
    tmp_path: Path, fake_studies: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    from rich.console import Console

    from descentlab import studies

    run = studies.run

    def interrupted_second(name: str, **kw: Any) -> Any:
        if name == "fake-good":
            raise KeyboardInterrupt
        return run(name, **kw)

    monkeypatch.setattr(studies, "run", interrupted_second)
    buf = io.StringIO()
    console = Console(file=buf, width=120, force_terminal=True)
    with pytest.raises(KeyboardInterrupt):
        tour_mod.run_tour(tmp_path / "t", quick=True, bench=True, console=console, progress=True)
    text = (tmp_path / "t" / "index.html").read_text(encoding="utf-8")  # the page of what ran is written
    assert 'id="study-fake-bad" data-status="failed"' in text
    assert 'id="study-fake-good" data-status="failed"' in text and "interrupted (Ctrl-C)" in text
    assert not (tmp_path / "t" / "bench").exists()  # the benchmark did not start after the interrupt
    out = buf.getvalue()
    assert "tour" in out and "interrupted; the page of what ran" in out


class _InProcessPool:
    """Stands in for ProcessExecutor: runs the jobs here, in the order given (the fakes live in this process)."""

    threads = 1

    def __init__(self, workers: int):
        self.workers = workers

    def map(self, fn: Any, items: Any) -> Any:
        for item in items:
            yield fn(item)


def test_parallel_tour_runs_longest_first_and_keeps_lecture_order(
    tmp_path: Path, fake_studies: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from descentlab import studies
    from descentlab.bench import executors

    monkeypatch.setattr(executors, "ProcessExecutor", _InProcessPool)
    studies.get("fake-good").seconds = (50, 500)  # the longer one goes first ...
    studies.get("fake-bad").seconds = (1, 10)
    out = tmp_path / "t"
    stale = out / "studies" / "fake-bad"
    stale.mkdir(parents=True)
    (stale / "summary.json").write_text("{}")
    (out / tour_mod.MANIFEST).write_text('{"files": ["studies/fake-bad/summary.json"]}')  # an earlier tour's
    res = tour_mod.run_tour(out, quick=True, bench=False, progress=False, jobs=2)
    assert fake_studies == ["fake-good", "fake-bad"]
    # ... but entries and the page keep lecture order (seed 001 before 002)
    assert [(e.name, e.status) for e in res.entries] == [("fake-bad", "failed"), ("fake-good", "ok")]
    assert not (stale / "summary.json").exists() and (stale / "failed.json").is_file()
    text = res.page.read_text(encoding="utf-8")
    assert (
        'id="study-fake-bad" data-status="failed"' in text and 'id="study-fake-good" data-status="ok"' in text
    )
    with pytest.raises(ValueError, match="jobs must be a positive integer, got 0"):
        tour_mod.run_tour(out, quick=True, bench=False, progress=False, jobs=0)


def test_parallel_job_caps_a_studys_threads(
    tmp_path: Path, fake_studies: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from descentlab import studies

    seen: dict[str, Any] = {}
    run = studies.run

    def recording(name: str, **kw: Any) -> Any:
        seen[name] = kw.pop("threads", None)
        return run(name, **kw)

    monkeypatch.setattr(studies, "run", recording)
    studies.get("fake-good").quick = {"threads": 2}  # asks for 2 threads: capped at the worker's 1
    entry = tour_mod._tour_job(("study", "fake-good", True, str(tmp_path), str(tmp_path / "s.db"), 1))
    assert entry.status == "ok" and seen["fake-good"] == 1
    studies.get("fake-good").quick = {"threads": 1}  # within the share: left alone
    tour_mod._tour_job(("study", "fake-good", True, str(tmp_path), str(tmp_path / "s.db"), 2))
    assert seen["fake-good"] is None


def test_parallel_tour_interrupt_keeps_what_ran(
    tmp_path: Path, fake_studies: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import signal

    from descentlab import studies
    from descentlab.bench import executors

    monkeypatch.setattr(executors, "ProcessExecutor", _InProcessPool)
    handler = signal.getsignal(signal.SIGINT)

    def interrupted(name: str, **kw: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(studies, "run", interrupted)
    try:
        with pytest.raises(KeyboardInterrupt):
            tour_mod.run_tour(tmp_path / "t", quick=True, bench=False, progress=False, jobs=2)
    finally:
        signal.signal(signal.SIGINT, handler)  # the job ignores a second Ctrl-C once interrupted
    text = (tmp_path / "t" / "index.html").read_text(encoding="utf-8")
    assert "interrupted (Ctrl-C)" in text
    assert json.loads((tmp_path / "t" / "studies" / "fake-bad" / "failed.json").read_text())[
        "error"
    ].startswith("interrupted")


@pytest.mark.slow
def test_real_parallel_quick_tour(tmp_path: Path) -> None:
    """Two real quick studies in two spawned processes (about 20 s on 2 cores)."""
    res = tour_mod.run_tour(
        tmp_path / "t", quick=True, bench=False, only="batch-size,weight-decay-vs-l2", progress=False, jobs=2
    )
    assert [e.name for e in res.entries] == tour_mod.select_studies(
        "batch-size,weight-decay-vs-l2"
    )  # lecture order
    assert all(e.status == "ok" and e.claims_total > 0 for e in res.entries)
    summary = json.loads((tmp_path / "t" / "studies" / "batch-size" / "summary.json").read_text())
    assert summary["runs"] and (tmp_path / "t" / "tour.db").is_file()
    from descentlab.store import Store

    with Store(tmp_path / "t" / "tour.db") as st:  # both workers wrote their runs into the one store
        ids = set(st.run_ids())
    assert set(summary["runs"]) <= ids


def test_cli_jobs_default_and_bad_value(monkeypatch: pytest.MonkeyPatch) -> None:
    import typer
    from typer.testing import CliRunner

    from descentlab.bench import executors
    from descentlab.report.cli import report, tour

    monkeypatch.setattr(executors, "usable_cores", lambda: 16)
    assert tour_mod.auto_jobs() == tour_mod.AUTO_JOBS_MAX == 4
    monkeypatch.setattr(executors, "usable_cores", lambda: 2)
    assert tour_mod.auto_jobs() == 2
    seen: dict[str, Any] = {}

    def fake_run_tour(out: Any, **kw: Any) -> Any:
        seen.update(kw)
        raise ValueError("stop here")

    monkeypatch.setattr(tour_mod, "run_tour", fake_run_tour)
    app = typer.Typer()
    app.command()(tour)
    app.command()(report)
    res = CliRunner().invoke(app, ["tour", "--quick"])
    assert isinstance(res.exception, ValueError) and seen["jobs"] == 2  # 0 (the default) = one per core
    CliRunner().invoke(app, ["tour", "-j", "1"])
    assert seen["jobs"] == 1
    bad = CliRunner().invoke(app, ["tour", "--jobs", "-1"])
    assert isinstance(bad.exception, ValueError) and "--jobs must be >= 0" in str(bad.exception)


def test_parallel_tour_survives_a_dead_worker(
    tmp_path: Path, fake_studies: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker killed mid-tour (BrokenProcessPool) fails the studies without a result; the page is still written."""
    from concurrent.futures.process import BrokenProcessPool

    from descentlab.bench import executors

    class DyingPool(_InProcessPool):
        def map(self, fn: Any, items: Any) -> Any:
            items = list(items)
            yield fn(items[0])
            raise BrokenProcessPool("a child process terminated abruptly")

    monkeypatch.setattr(executors, "ProcessExecutor", DyingPool)
    res = tour_mod.run_tour(tmp_path / "t", quick=True, bench=False, progress=False, jobs=2)
    by_name = {e.name: e for e in res.entries}
    assert by_name["fake-bad"].status == "failed" and "the study broke" in by_name["fake-bad"].error
    assert by_name["fake-good"].status == "failed" and "BrokenProcessPool" in by_name["fake-good"].error
    failed = json.loads((tmp_path / "t" / "studies" / "fake-good" / "failed.json").read_text())
    assert "terminated abruptly" in failed["error"]
    assert 'id="study-fake-good" data-status="failed"' in res.page.read_text(encoding="utf-8")


def test_tour_counts_three_valued_verdicts_and_succeeds_whatever_they_are(
    tmp_path: Path, fake_studies: list[str], monkeypatch: pytest.MonkeyPatch, verdict_maker: Any
) -> None:
    """A study whose claims fail or are inconclusive is still "ok" (only a raising study fails); the entry, the
    console table and the lines printed by the CLI count hold / fail / inconclusive, checks apart."""
    import io

    import typer
    from rich.console import Console
    from typer.testing import CliRunner

    from descentlab import studies
    from descentlab.report.cli import report, tour

    def run(name: str, quick: bool, out: Path, store: Any, progress: bool) -> Any:
        folder = verdict_maker(out.parent / "_tmp", name, "seed 002, 'Good'",
                               ["holds", "fails", "inconclusive", "holds"], checks=[True, False])  # fmt: skip
        summary = json.loads((folder / "summary.json").read_text())
        summary["claims"][1]["claim"] = "[bold]not markup[/bold]"
        (out / "summary.json").write_text(json.dumps(summary))
        return SimpleNamespace(claims=summary["claims"], summary=summary)

    monkeypatch.setattr(studies, "run", run)
    res = tour_mod.run_tour(tmp_path / "t", quick=True, bench=False, only="fake-good", progress=False)
    (e,) = res.entries
    assert e.status == "ok" and not e.all_hold
    assert (e.claims_held, e.claims_failed, e.claims_inconclusive, e.claims_total) == (2, 1, 1, 4)
    assert (e.checks_passed, e.checks_total) == (1, 2)  # checks are not claims
    assert e.tally() == "2 hold · 1 fail · 1 inconclusive"
    assert [m.split(":")[0] for m in e.failed_claims] == ["fails", "inconclusive"]
    assert "✓ fake-good: 2 hold · 1 fail · 1 inconclusive" in tour_mod._entry_line(e)
    buf = io.StringIO()
    Console(file=buf, width=160).print(tour_mod.summary_table(res))
    assert "2 · 1 · 1" in buf.getvalue() and "2 hold · 1 fail · 1 inconclusive" in buf.getvalue()
    text = res.page.read_text(encoding="utf-8")
    assert (
        'id="study-fake-good" data-status="partial"' in text
        and "some claims fail or are inconclusive" in text
    )
    assert "4 claims: <b>2 hold</b> · 1 fail · 1 inconclusive" in text

    app = typer.Typer()
    app.command()(tour)
    app.command()(report)
    cli = CliRunner().invoke(app, ["tour", "--only", "fake-good", "--no-bench", "--no-progress", "-j", "1",
                                   "--out", str(tmp_path / "t2")])  # fmt: skip
    assert cli.exit_code == 0, cli.output  # the tour succeeds whatever the verdicts are
    assert "✗ fake-good: fails: [bold]not markup[/bold]" in cli.output  # claim text printed as text
    assert "✗ fake-good: inconclusive: " in cli.output
