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
