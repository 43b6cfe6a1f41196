"""One table of bad inputs across the library and the CLI: each is answered by one clear line naming the problem.

Library: ValueError/TypeError whose message names the bad value. CLI: exit code 2, one ``error:`` line, no traceback.
"""

from __future__ import annotations

import pickle

import pytest
import torch
from torch import nn

import descentlab
from descentlab import landscape, optim, schedules, studies, tasks
from descentlab.cli import main
from descentlab.store import Store
from descentlab.train import load_checkpoint, train


def _model() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))


def _data():
    return torch.randn(16, 4), torch.randint(0, 3, (16,))


def _opt():
    return torch.optim.SGD(_model().parameters(), lr=0.1)


CE = nn.functional.cross_entropy

LIBRARY = [
    # optimizer registry and hyper-parameters
    (lambda: optim.create("adamm", _model()), "did you mean 'adam'"),
    (lambda: optim.create("sgd", _model(), lr=-1.0), "-1.0"),
    (lambda: optim.create("adam", _model(), betas=(1.0, 0.9)), "1.0"),
    (lambda: optim.create("adam", _model(), betas=(0.9, -0.1)), "-0.1"),
    (lambda: optim.create("adam", _model(), eps=-1e-8), "-1e-08"),
    (lambda: optim.create("sgd", _model(), lr=0.1, momentum=-0.5), "-0.5"),
    (lambda: optim.create("adam", _model(), lr=1e-3, bogus=1), "bogus"),
    (lambda: optim.create("sam", _model(), rho=-0.1), "-0.1"),
    (lambda: optim.create("sam", _model(), p=0.5), "0.5"),
    (lambda: optim.create("asam", _model(), eta=-1.0), "-1.0"),
    (lambda: optim.create("lookahead", _model(), k=0), "k"),
    (lambda: optim.create("lookahead", _model(), alpha=1.5), "1.5"),
    (lambda: optim.create("lookahead", _model(), pullback="sometimes"), "sometimes"),
    (lambda: optim.create("muon", _model(), momentum=1.5), "1.5"),
    (lambda: optim.create("muon", _model(), adjust_lr="bogus"), "bogus"),
    (lambda: optim.create("muon", _model(), ns_method="qr"), "qr"),
    (lambda: optim.create("muon", _model(), ns_steps=0), "ns_steps"),
    (lambda: optim.create("shampoo", _model(), precondition_frequency=0), "precondition_frequency"),
    (lambda: optim.create("shampoo", _model(), grafting="rmsprop2"), "rmsprop2"),
    (lambda: optim.create("shampoo", _model(), epsilon=-1.0), "-1.0"),
    (lambda: optim.create("steepest", _model(), norm="l3"), "l3"),
    (lambda: optim.create("steepest", _model(), scale="half"), "half"),
    (lambda: optim.orthogonalize(torch.randn(4, 4), method="cholesky"), "cholesky"),
    (lambda: optim.orthogonalize(torch.randn(4), method="svd"), "dim"),
    # schedules
    (lambda: schedules.create("cosin", _opt(), 100), "did you mean 'cosine'"),
    (lambda: schedules.create("cosine", _opt(), 0), "total_steps"),
    (lambda: schedules.create("step", _opt(), 100, gamma_typo=0.5), "gamma_typo"),
    # tasks
    (lambda: tasks.get("logrge"), "did you mean 'logreg'"),
    (lambda: tasks.get("logreg", m_typo=3), "m_typo"),
    (lambda: tasks.get("mnist1d_mlp", label_noise=1.5), "1.5"),
    (lambda: tasks.get("modular", op="%"), "%"),
    (lambda: tasks.get("logreg").batches(0), "batch_size"),
    # training loop
    (lambda: train("logreg", lr=0.0, store=False, progress=False), "lr must be a positive"),
    (lambda: train("logreg", lr=float("nan"), store=False, progress=False), "lr must be a positive"),
    (lambda: train("logreg", steps=0, store=False, progress=False), "steps must be a positive"),
    (lambda: train("logreg", steps=5, batch_size=-3, store=False, progress=False), "batch_size"),
    (lambda: train("logreg", time_budget=-1.0, store=False, progress=False), "time_budget"),
    (lambda: train("logreg", steps=5, device="tpu", store=False, progress=False), "tpu"),
    (lambda: train("logreg", steps=5, averaging="median", store=False, progress=False), "median"),
    (
        lambda: train("logreg", steps=5, schedule="cosin", store=False, progress=False),
        "did you mean 'cosine'",
    ),
    (lambda: train(42, store=False, progress=False), "task must be"),
    # studies
    (lambda: studies.run("sgd-noise-flor"), "did you mean 'sgd-noise-floor'"),
    # geometry
    (lambda: landscape.line(_model(), CE, _data(), points=0), "points"),
    (lambda: landscape.plane(_model(), CE, _data(), span=((1, -1), (-1, 1))), "span"),
    (lambda: landscape.random_directions(_model(), normalization="row"), "row"),
    (lambda: landscape.hessian_eigenvalues(_model(), CE, _data(), k=0), "k"),
    (lambda: landscape.hessian_eigenvalues(_model(), CE, _data(), which="biggest"), "biggest"),
    (lambda: landscape.hessian_trace(_model(), CE, _data(), method="exact"), "exact"),
    (lambda: landscape.sharpness(_model(), CE, _data(), rho=-0.1), "-0.1"),
    (lambda: landscape.connect(_model(), _model(), CE, _data(), curve="spline"), "spline"),
    (lambda: landscape.line("not a model", CE, _data()), "model"),
]


@pytest.mark.parametrize("call, fragment", LIBRARY, ids=[f"lib{i:02d}" for i in range(len(LIBRARY))])
def test_library_bad_input(call, fragment):
    with pytest.raises((ValueError, TypeError)) as info:
        call()
    msg = str(info.value)
    assert fragment in msg, msg
    assert "\n" not in msg.strip(), msg


def test_store_and_checkpoint_bad_input(tmp_path):
    bad = tmp_path / "corrupt.db"
    bad.write_bytes(b"garbage" * 500)
    with pytest.raises(ValueError, match="cannot open store"):
        Store(bad)
    with pytest.raises(ValueError, match="unknown run id 'ghost'"):
        descentlab.load_run("ghost", tmp_path / "ok.db")
    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"x": _Evil()}))
    with pytest.raises(ValueError, match="refusing to load checkpoint"):
        load_checkpoint(evil)
    with pytest.raises(ValueError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "missing.pt")


class _Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_checkpoint_from_another_task(tmp_path):
    db = tmp_path / "s.db"
    train("logreg", optimizer="adam", steps=4, checkpoint_every=2, store=db, run_id="a", progress=False)
    train(
        "softmax_digits", optimizer="adam", steps=4, checkpoint_every=2, store=db, run_id="b", progress=False
    )
    ck_dir = db.parent / "s.db.checkpoints"
    (ck_dir / "a" / "last.pt").write_bytes((ck_dir / "b" / "last.pt").read_bytes())
    with Store(db) as st:  # as if "a" had been killed (a finished run is left alone, not resumed)
        st.set_status("a", "interrupted")
    with pytest.raises(ValueError, match="belongs to task 'softmax_digits'"):
        descentlab.resume("a", store=db, progress=False)


CLI = [
    ["train", "--task", "logreg", "--optimizer", "adamm"],
    ["train", "--task", "logrge"],
    ["train", "--task", "logreg", "--schedule", "cosin"],
    ["train", "--task", "logreg", "--lr", "0"],
    ["train", "--task", "logreg", "--lr", "-1e-3"],
    ["train", "--task", "logreg", "--set", "betas=1.5,0.9", "--steps", "2"],
    ["train", "--task", "logreg", "--optimizer", "sam", "--set", "rho=-1", "--steps", "2"],
    ["train", "--task", "logreg", "--optimizer", "lookahead", "--set", "k=0", "--steps", "2"],
    ["train", "--task", "logreg", "--optimizer", "sam", "--set", "p=0.5", "--steps", "2"],
    ["train", "--task", "logreg", "--set", "momentum"],
    ["train", "--task", "logreg", "--set", "a=b=c=[1"],
    ["train", "--task", "logreg", "--task-set", "m=0", "--steps", "2"],
    ["train", "--task", "logreg", "--steps", "-5"],
    ["train", "--task", "logreg", "--batch-size", "0"],
    ["train", "--task", "logreg", "--device", "quantum"],
    ["train"],
    ["runs", "show", "ghost"],
    ["runs", "export", "ghost", "--csv", "x.csv"],
    ["resume", "ghost"],
    ["study", "sgd-noise-flor"],
    ["study", "sgd-noise-floor", "--quick", "--set", "alhpas=0.1"],
    ["study", "sgd-noise-floor", "--seeds", "0"],
    ["landscape", "ghost", "--kind", "plane"],
    ["landscape", "ghost", "--kind", "bowl"],
    ["optimizers", "--bogus"],
]


@pytest.mark.parametrize("argv", CLI, ids=[" ".join(a)[:60] for a in CLI])
def test_cli_bad_input(argv, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DESCENTLAB_STORE", str(tmp_path / "s.db"))
    monkeypatch.chdir(tmp_path)
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), err


def test_cli_unwritable_store(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["runs", "list", "--store", str(blocker / "db.sqlite")]) == 2
    assert "no store at" in capsys.readouterr().err  # reading opens read-only: it never creates a store
    assert main(["train", "--task", "quadratic", "--steps", "1", "--store", str(blocker / "db.sqlite")]) == 2
    assert "cannot create store" in capsys.readouterr().err


def test_debug_shows_traceback(tmp_path, monkeypatch):
    monkeypatch.setenv("DESCENTLAB_STORE", str(tmp_path / "s.db"))
    with pytest.raises(ValueError):
        main(["--debug", "train", "--task", "logrge"])
