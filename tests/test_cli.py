"""The command line: a real train -> runs list/show/export round trip, and one-line errors with exit code 2."""

from __future__ import annotations

import json

import pytest

from descentlab.cli import main, parse_sets
from descentlab.store import Store


def test_parse_sets():
    assert parse_sets(["momentum=0.9", "betas=0.9,0.98", "nesterov=true", "name=abc", "k=5", "x=none"]) == {
        "momentum": 0.9,
        "betas": (0.9, 0.98),
        "nesterov": True,
        "name": "abc",
        "k": 5,
        "x": None,
    }


def test_train_and_inspect(tmp_path, capsys):
    db = str(tmp_path / "s.db")
    rc = main(
        [
            "train",
            "--task",
            "logreg",
            "--optimizer",
            "sgd",
            "--lr",
            "0.1",
            "--steps",
            "50",
            "--set",
            "momentum=0.9",
            "--run-id",
            "cli1",
            "--store",
            db,
            "--no-progress",
        ]
    )
    assert rc == 0
    capsys.readouterr()
    assert main(["runs", "show", "cli1", "--json", "--store", db]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["status"] == "finished"
    assert shown["config"]["hparams"] == {"momentum": 0.9}
    assert shown["final"]["step"] == 50
    assert main(["runs", "list", "--store", db]) == 0
    assert "cli1" in capsys.readouterr().out
    csv_path = tmp_path / "cli1.csv"
    assert main(["runs", "export", "cli1", "--csv", str(csv_path), "--store", db]) == 0
    header = csv_path.read_text().splitlines()[0].split(",")
    assert header[0] == "step" and "loss" in header and "batch_loss" in header


def test_resume_cli(tmp_path, capsys):
    db = str(tmp_path / "s.db")
    assert (
        main(
            [
                "train",
                "--task",
                "logreg",
                "--optimizer",
                "adam",
                "--steps",
                "30",
                "--checkpoint-every",
                "10",
                "--run-id",
                "ck",
                "--store",
                db,
                "--no-progress",
            ]
        )
        == 0
    )
    assert main(["resume", "ck", "--store", db, "--no-progress"]) == 0


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["train", "--task", "logreg", "--optimizer", "adamm"], "did you mean 'adam'"),
        (["train", "--task", "logrge"], "did you mean 'logreg'"),
        (["train", "--task", "logreg", "--schedule", "cosin"], "did you mean 'cosine'"),
        (["train", "--task", "logreg", "--lr", "-1"], "lr must be a positive"),
        (["train", "--task", "logreg", "--set", "momentum"], "malformed --set"),
        (["train", "--task", "logreg", "--set", "=3"], "malformed --set"),
        (["train", "--task", "logreg", "--set", "betas=[0.9"], "malformed JSON"),
        (["train", "--task", "logreg", "--steps", "abc"], "Invalid value for '--steps'"),
        (["train", "--task", "logreg", "--steps", "0"], "steps must be a positive"),
        (["train", "--task", "logreg", "--bogus"], "No such option"),
        (["runs", "show", "nope"], "unknown run id 'nope'"),
        (["resume", "nope"], "unknown run id 'nope'"),
        (["runs", "list", "--status", "done"], "unknown status"),
        (["nosuchcommand"], "No such command"),
    ],
)
def test_bad_input_one_line_exit_2(argv, expected, tmp_path, capsys):
    Store(tmp_path / "s.db").close()  # an empty store: reading commands never create one
    rc = main(
        [*argv, *(["--store", str(tmp_path / "s.db")] if argv[0] in ("train", "runs", "resume") else [])]
    )
    err = capsys.readouterr().err
    assert rc == 2
    assert expected in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 or err.count("error:") == 1


def test_unwritable_store(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    rc = main(["runs", "list", "--store", str(blocker / "sub" / "s.db")])
    assert rc == 2
    assert "no store at" in capsys.readouterr().err  # reading opens read-only and creates nothing
    rc = main(["train", "--task", "logreg", "--steps", "1", "--store", str(blocker / "sub" / "s.db")])
    assert rc == 2
    assert "cannot create store" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["line", "plane", "hessian", "trace", "sharpness"])
def test_landscape_on_stored_run(kind, tmp_path, capsys):
    db = str(tmp_path / "s.db")
    assert (
        main(
            [
                "train",
                "--task",
                "digits_mlp",
                "--steps",
                "30",
                "--run-id",
                "ls",
                "--store",
                db,
                "--no-progress",
            ]
        )
        == 0
    )
    out = tmp_path / "ls"
    rc = main(
        [
            "landscape",
            "ls",
            "--kind",
            kind,
            "--points",
            "5",
            "--samples",
            "200",
            "--store",
            db,
            "--out",
            str(out),
        ]
    )
    assert rc == 0, capsys.readouterr().err
    numbers = json.loads((out / f"{kind}.json").read_text())
    assert numbers["samples"] == 200
    if kind == "hessian":
        assert len(numbers["top_eigenvalues"]) == 3
        assert numbers["top_eigenvalues"][0] >= numbers["top_eigenvalues"][1]
    if kind == "line":
        # the middle of the line is the stored model itself: its loss on the same 200 samples
        from descentlab.cli import load_trained_model

        task, model, _ = load_trained_model("ls", db)
        x, y = (t[:200] for t in task.train_data)
        assert numbers["loss"][2] == pytest.approx(float(task.outputs_loss(model(x), y).detach()), rel=1e-5)


def test_landscape_bad_kind(tmp_path, capsys):
    assert main(["landscape", "x", "--kind", "plan", "--store", str(tmp_path / "s.db")]) == 2
    assert "did you mean 'plane'" in capsys.readouterr().err
