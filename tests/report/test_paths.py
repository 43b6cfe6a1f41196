"""The page embeds only files inside the study folder (issue 20): figures, trajectories and animations named by a
summary.json that point elsewhere (absolute paths, ``..``, symbolic links out) are refused, with a visible note."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest

from descentlab.report import load_study, write_report
from descentlab.report.load import inside


@pytest.fixture
def outside(tmp_path: Path) -> dict[str, Path]:
    """Files outside the study folder that a hostile summary.json names (a secret, a PNG, a trajectories file)."""
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-TOKEN")
    png = tmp_path / "elsewhere.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\nOUTSIDE-PNG-BYTES")
    traj = tmp_path / "traj.json"
    traj.write_text(json.dumps({"function": "f", "contours": {"x": [0, 1], "y": [0, 1], "z": [[0, 1], [1, 2]]},
                                "runs": {"gd": {"0.1": [[0, 0], [1, 1]]}}}))  # fmt: skip
    return {"secret": secret, "png": png, "traj": traj}


def _embedded(text: str) -> bytes:
    """Every base64 payload of the page's data: URIs, decoded and joined."""
    import re

    return b"".join(
        base64.b64decode(m) for m in re.findall(r"data:[a-z/+.-]+;base64,([A-Za-z0-9+/=]+)", text)
    )


def test_inside_refuses_paths_out_of_the_folder(tmp_path: Path, outside: dict[str, Path]) -> None:
    folder = tmp_path / "study"
    (folder / "sub").mkdir(parents=True)
    (folder / "ok.png").write_bytes(b"x")
    (folder / "sub" / "deep.png").write_bytes(b"x")
    os.symlink(outside["png"], folder / "link.png")
    os.symlink(folder / "ok.png", folder / "inner-link.png")
    assert inside(folder, "ok.png") == (folder / "ok.png").resolve()
    assert inside(folder, "sub/deep.png") == (folder / "sub" / "deep.png").resolve()
    assert inside(folder, "inner-link.png") == (folder / "ok.png").resolve()  # a link that stays inside
    for bad in ("/etc/hostname", "../secret.txt", str(outside["png"]), "link.png", "sub/../../secret.txt",
                "", ".", "sub", "missing.png", None, 3, "a\x00b"):  # fmt: skip
        assert inside(folder, bad) is None, bad


def test_report_does_not_embed_files_outside_the_study(
    tmp_path: Path, outside: dict[str, Path], study_maker: Any
) -> None:
    folder = study_maker(tmp_path / "studies", "methods-race", "seed 002, 'x'", [True])
    os.symlink(outside["png"], folder / "link.png")
    os.symlink(outside["secret"], folder / "secret.gif")
    (folder / "notes.txt").write_text("inside but not an image")
    summary = json.loads((folder / "summary.json").read_text())
    summary["figures"] = ["methods-race.png", "/etc/hostname", "../../secret.txt", str(outside["png"]),
                          "link.png", "notes.txt"]  # fmt: skip
    summary["numbers"]["trajectories"] = "../../traj.json"
    summary["numbers"]["gif"] = "secret.gif"
    (folder / "summary.json").write_text(json.dumps(summary))

    sec = load_study(folder)
    assert sec.trajectories is None  # the named trajectories file is outside: not read
    assert [f.name for f in sec.figures if f.path is not None] == ["methods-race.png"]
    text = write_report(tmp_path / "out", [folder]).read_text(encoding="utf-8")
    payload = _embedded(text)
    assert b"TOP-SECRET" not in payload and b"OUTSIDE-PNG" not in payload
    # the one figure inside the folder, nothing else embedded
    assert payload == (folder / "methods-race.png").read_bytes()
    assert text.count("<img ") == 1 and 'id="race"' not in text
    for name in ("/etc/hostname", "../../secret.txt", "link.png"):
        assert f"figure {name} is missing from the study folder" in text
    assert "figure notes.txt is not a PNG, JPEG or GIF file" in text


def test_report_cli_study_folder_is_the_boundary(
    tmp_path: Path, outside: dict[str, Path], study_maker: Any
) -> None:
    import typer
    from typer.testing import CliRunner

    from descentlab.report.cli import report

    folder = study_maker(tmp_path / "studies", "lookahead", "seed 003, 'x'", [True])
    (folder / "trajectories.json").unlink(missing_ok=True)
    os.symlink(outside["traj"], folder / "trajectories.json")  # the default name, linked out of the folder
    summary = json.loads((folder / "summary.json").read_text())
    summary["figures"] = ["../../secret.txt", "/etc/hostname"]
    (folder / "summary.json").write_text(json.dumps(summary))
    app = typer.Typer()
    app.command()(report)
    app.command("noop")(lambda: None)  # two commands: `report` stays a sub-command
    res = CliRunner().invoke(app, ["report", "--study", str(folder), "--out", str(tmp_path / "page")])
    assert res.exit_code == 0, res.output
    text = (tmp_path / "page" / "index.html").read_text(encoding="utf-8")
    assert "TOP-SECRET" not in text and b"TOP-SECRET" not in _embedded(text)
    assert "<img " not in text and 'id="race"' not in text
    assert "figure ../../secret.txt is missing from the study folder" in text


def test_bench_folder_images_stay_inside(tmp_path: Path, outside: dict[str, Path]) -> None:
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "leaderboard.md").write_text("| rank | algorithm |\n|---|---|\n| 1 | adamw |\n")
    os.symlink(outside["png"], bench / "profiles.png")
    text = write_report(tmp_path / "out", bench=bench).read_text(encoding="utf-8")
    assert "<img " not in text and b"OUTSIDE-PNG" not in _embedded(text) and "<td>adamw</td>" in text


# ------------------------------------------------------------------------ output paths (issue 28, item 10)
@pytest.fixture
def planted_temp(monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Make descentlab.safe_write pick a predictable temporary name, so a test can plant a link there first."""
    from descentlab import safe_write

    chosen: dict[str, Path] = {}

    def fixed(target: Path) -> Path:
        chosen["tmp"] = target.with_name(f".{target.name}.{os.getpid()}.{'0' * 16}.tmp")
        return chosen["tmp"]

    monkeypatch.setattr(safe_write, "temp_name", fixed)
    return chosen


def test_export_never_writes_through_a_link_at_its_temporary_name(tmp_path: Path, planted_temp: Any) -> None:
    """The old export wrote `.<name>.tmp<pid>` with a plain open: a link planted there overwrote the store."""
    from descentlab.store import Store
    from descentlab.train import train

    db = tmp_path / "s.db"
    train("logreg", steps=2, store=db, run_id="r", progress=False)
    before = db.read_bytes()
    out = tmp_path / "r.csv"
    os.symlink(db, out.with_name(f".{out.name}.{os.getpid()}.{'0' * 16}.tmp"))
    with Store(db, read_only=True) as st, pytest.raises(ValueError, match="cannot write"):
        st.export_csv("r", out)
    assert db.read_bytes() == before and not out.exists()
    os.unlink(out.with_name(f".{out.name}.{os.getpid()}.{'0' * 16}.tmp"))
    with Store(db, read_only=True) as st:  # without the planted link the same export works
        st.export_csv("r", out)
    assert out.read_text().startswith("step,") and db.read_bytes() == before


def test_report_page_is_replaced_atomically_and_never_through_a_link(
    tmp_path: Path, study_maker: Any, planted_temp: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = study_maker(tmp_path / "studies", "lookahead", "seed 003, 'x'", [True])
    out = tmp_path / "page"
    page = write_report(out, [folder])
    first = page.read_bytes()
    victim = tmp_path / "victim.txt"
    victim.write_text("KEEP")
    # a link at the temporary name: the open fails (O_EXCL|O_NOFOLLOW), the page and the link's target stay
    os.symlink(victim, planted_temp["tmp"])
    with pytest.raises(ValueError, match="File exists; the previous page is unchanged"):
        write_report(out, [folder])
    assert page.read_bytes() == first and victim.read_text() == "KEEP"
    os.unlink(planted_temp["tmp"])
    # a failed write (a full disk at fsync) keeps the previous page and leaves no temporary file
    import errno

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(ValueError, match="No space left on device; the previous page is unchanged"):
        write_report(out, [folder], title="another title")
    monkeypatch.undo()
    assert page.read_bytes() == first and sorted(p.name for p in out.iterdir()) == ["index.html"]
    # a link at the page itself is refused, its target untouched
    page.unlink()
    os.symlink(victim, page)
    with pytest.raises(ValueError, match="symbolic link"):
        write_report(out, [folder])
    assert victim.read_text() == "KEEP"


def test_report_refuses_hard_links_from_outside_and_caps_figures(
    tmp_path: Path, outside: dict[str, Path], study_maker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from descentlab.report import load as report_load

    folder = study_maker(tmp_path / "studies", "methods-race", "seed 002, 'x'", [True])
    os.link(outside["png"], folder / "hard.png")  # the same inode as a file outside the folder
    os.link(folder / "methods-race.png", folder / "twin.png")  # two names, both inside: fine
    summary = json.loads((folder / "summary.json").read_text())
    summary["figures"] = ["methods-race.png", "hard.png", "twin.png"]
    (folder / "summary.json").write_text(json.dumps(summary))
    assert inside(folder, "hard.png") is None and inside(folder, "twin.png") is not None
    text = write_report(tmp_path / "out", [folder]).read_text(encoding="utf-8")
    assert b"OUTSIDE-PNG" not in _embedded(text)
    assert "figure hard.png is missing from the study folder" in text and text.count("<img ") == 2
    # the size cap: a figure over it is named with the cap instead of embedded
    size = (folder / "methods-race.png").stat().st_size
    monkeypatch.setattr(report_load, "MAX_FIGURE_BYTES", size - 1)
    text = write_report(tmp_path / "out2", [folder]).read_text(encoding="utf-8")
    assert "<img " not in text
    assert f"figure methods-race.png is {size / 1e6:.1f} MB, over the {(size - 1) / 1e6:.0f} MB cap" in text


def test_study_landscape_and_bench_outputs_refuse_planted_links(tmp_path: Path, capsys: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from descentlab.bench.workloads import calibrate_hardware
    from descentlab.cli import main
    from descentlab.studies import StudyContext
    from descentlab.train import train

    victim = tmp_path / "victim.txt"
    victim.write_text("KEEP")
    out = tmp_path / "study"
    out.mkdir()
    os.symlink(victim, out / "fig.svg")
    ctx = StudyContext("x", out, None, True)
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    with pytest.raises(ValueError, match="symbolic link"):
        ctx.save_figure(fig, "fig")
    assert victim.read_text() == "KEEP"
    # landscape: a link planted at the figure's name
    db = tmp_path / "s.db"
    train("logreg", steps=2, store=db, run_id="r", progress=False)
    (tmp_path / "ls").mkdir()
    os.symlink(victim, tmp_path / "ls" / "line.png")
    rc = main(["landscape", "r", "--store", str(db), "--points", "3", "--out", str(tmp_path / "ls")])
    assert rc == 2 and "symbolic link" in capsys.readouterr().err and victim.read_text() == "KEEP"
    # the hardware calibration file
    os.symlink(victim, tmp_path / "hw.json")
    with pytest.raises(ValueError, match="symbolic link"):
        from descentlab import safe_write

        safe_write.write_text(tmp_path / "hw.json", "{}")
    assert victim.read_text() == "KEEP" and callable(calibrate_hardware)


@pytest.mark.slow
def test_bench_report_refuses_planted_links(tmp_path: Path) -> None:
    """A link at one of `bench report`'s files is refused, its target untouched (a 1-trial benchmark, ~15 s)."""
    from descentlab.bench import run_benchmark
    from descentlab.bench.report import write_report as bench_report

    victim = tmp_path / "victim.txt"
    victim.write_text("KEEP")
    res = run_benchmark(["adamw"], ["tiny_steps"], trials=1, studies=1, store=tmp_path / "b.db", scale=1.0,
                        progress=False)  # fmt: skip
    rep = tmp_path / "rep"
    rep.mkdir()
    for name in ("leaderboard.md", "profiles.png"):
        os.symlink(victim, rep / name)
        with pytest.raises(ValueError, match="symbolic link"):
            bench_report(res, rep)
        assert victim.read_text() == "KEEP"
        os.unlink(rep / name)
    assert all(p.stat().st_size > 0 and not p.is_symlink() for p in bench_report(res, rep))


def test_stale_temporary_files_of_killed_writers_are_removed(tmp_path: Path) -> None:
    import subprocess
    import sys

    from descentlab import safe_write
    from descentlab.train.checkpoint import atomic_save

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    pid = int(dead.stdout)  # this process has exited: its temporary files are orphans
    target = tmp_path / "index.html"
    orphan = tmp_path / f".index.html.{pid}.{'a' * 16}.tmp"
    mine = tmp_path / f".index.html.{os.getpid()}.{'b' * 16}.tmp"  # a live writer's (this process)
    other = tmp_path / f".other.html.{pid}.{'c' * 16}.tmp"  # another target's
    for p in (orphan, mine, other):
        p.write_text("partial")
    safe_write.write_text(target, "page")
    assert target.read_text() == "page" and not orphan.exists() and mine.exists() and other.exists()
    # checkpoints: the old writer's name (`last.pt.tmp<pid>`) too
    legacy = tmp_path / f"last.pt.tmp{pid}"
    legacy.write_bytes(b"partial")
    atomic_save({"x": 1}, tmp_path / "last.pt")
    assert not legacy.exists() and (tmp_path / "last.pt").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")) == [mine.name, other.name]
