"""User strings reach the terminal as text, never as rich markup (issue 20): ``[/x]`` once crashed with a MarkupError
(and a stored run named so broke ``runs list`` for the whole store); ``[bold]red`` was shown as "red"."""

from __future__ import annotations

import sqlite3

import pytest

from descentlab.cli import main
from descentlab.train import train

NASTY = ["[/x]", "[bold]red", "[red]x[/red]"]


def _legacy_rename(db, old: str, new: str) -> None:
    """Give a stored run an id the current validation refuses (as an older store may hold)."""
    con = sqlite3.connect(db)
    with con:
        con.execute("UPDATE runs SET id = ? WHERE id = ?", (new, old))
        con.execute("UPDATE metrics SET run = ? WHERE run = ?", (new, old))
    con.close()


def test_runs_list_and_show_print_ids_as_text(tmp_path, capsys):
    db = tmp_path / "s.db"
    for i, name in enumerate(NASTY):
        train("logreg", optimizer="sgd", lr=0.1, steps=2, store=db, run_id=f"r{i}", progress=False)
        _legacy_rename(db, f"r{i}", name)
    capsys.readouterr()
    assert main(["runs", "list", "--store", str(db)]) == 0
    out = capsys.readouterr().out
    for name in ("[/x]", "[bold]red", "[red]x[/"):  # the table may cut a long id short with an ellipsis
        assert name in out, out
    for name in NASTY:
        assert main(["runs", "show", name, "--store", str(db)]) == 0
        assert name in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, shown",
    [
        (["train", "--task", "logreg", "--run-id", "[/x]", "--steps", "2"], "'[/x]'"),
        (["train", "--task", "logreg", "--run-id", "[bold]red", "--steps", "2"], "'[bold]red'"),
        (["train", "--task", "logreg", "-o", "[/x]", "--steps", "2"], "'[/x]'"),
        (["train", "--task", "logreg", "--set", "[/x]=1", "--steps", "2"], "[/x]=1"),
        (["study", "[/x]"], "'[/x]'"),
        (["study", "[bold]red"], "'[bold]red'"),
        (["tour", "--only", "[/x]"], "'[/x]'"),
        (["landscape", "[bold]red"], "'[bold]red'"),
        (["train", "--task", "[/x]"], "'[/x]'"),
    ],
)
def test_error_lines_quote_user_strings_as_text(argv, shown, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DESCENTLAB_STORE", str(tmp_path / "s.db"))
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in err, err
    assert shown in lines[0], lines[0]


def test_output_paths_print_as_text(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "s.db"
    train("logreg", optimizer="sgd", lr=0.1, steps=2, store=db, run_id="lr", progress=False)
    out = tmp_path / "[bold]red"
    assert (
        main(["landscape", "lr", "--kind", "hessian", "--k", "1", "--out", str(out), "--store", str(db)]) == 0
    )
    assert "[bold]red" in capsys.readouterr().out.replace("\n", "")
    csv = tmp_path / "[/x].csv"
    assert main(["runs", "export", "lr", "--csv", str(csv), "--store", str(db)]) == 0
    assert "[/x].csv" in capsys.readouterr().out.replace("\n", "")
