"""Values that used to be accepted and silently misused (issue 20): each is refused with the value named -- a
ValueError in the library, one ``error:`` line and exit code 2 on the command line -- before any work."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from descentlab import landscape, optim, tasks
from descentlab.cli import main
from descentlab.store import Store
from descentlab.train import train

CE = nn.functional.cross_entropy


def _model() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))


def _data():
    return torch.randn(16, 4), torch.randint(0, 3, (16,))


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in err, err
    return lines[0]


# ------------------------------------------------------------------------------------------- learning rates
@pytest.mark.parametrize("lr", [math.inf, math.nan, 0.0, -1e-3])
@pytest.mark.parametrize("name", optim.available())
def test_create_refuses_a_bad_learning_rate(name, lr):
    with pytest.raises(ValueError, match="lr must be a finite number > 0") as info:
        optim.create(name, _model(), lr=lr)
    assert repr(lr) in str(info.value)


def test_create_refuses_a_bad_learning_rate_in_a_param_group():
    m = _model()
    groups = [{"params": m[0].parameters()}, {"params": m[2].parameters(), "lr": math.inf}]
    with pytest.raises(ValueError, match="param group 1 lr must be a finite number >= 0, got inf"):
        optim.create("adam", groups, lr=1e-3)
    with pytest.raises(ValueError, match="lr_adam must be a finite number > 0, got nan"):
        optim.create("muon", _model(), lr=0.02, lr_adam=math.nan)


@pytest.mark.parametrize("lr", [0, 0.0, math.nan, math.inf, -1])
def test_train_refuses_lr_among_the_hyper_parameters(lr):
    """``--set lr=0`` once trained at the task's default lr (a falsy value was replaced)."""
    with pytest.raises(ValueError, match="lr must be a positive number"):
        train("logreg", hparams={"lr": lr}, steps=2, store=False, progress=False)


@pytest.mark.parametrize("value", ["0", "nan", "inf", "-0.1"])
@pytest.mark.parametrize("flag", ["--set", "--lr"])
def test_cli_refuses_a_bad_learning_rate_before_any_work(flag, value, tmp_path, capsys):
    db = tmp_path / "s.db"
    args = ["--set", f"lr={value}"] if flag == "--set" else ["--lr", value]
    rc = main(["train", "--task", "logreg", "--steps", "2", "--no-progress", "--store", str(db), *args])
    assert rc == 2
    assert "lr must be a positive number" in _one_error_line(capsys)
    if db.exists():
        with Store(db) as st:
            assert st.list_runs() == []


# ------------------------------------------------------------------------------------------------- landscape
BAD_GEOMETRY = [
    (lambda: landscape.line(_model(), CE, _data(), span=(-math.inf, math.inf)), "inf"),
    (lambda: landscape.line(_model(), CE, _data(), span=(math.nan, 1.0)), "nan"),
    (lambda: landscape.plane(_model(), CE, _data(), span=((-1, 1), (-math.inf, 1))), "inf"),
    (lambda: landscape.interpolate(_model(), _model(), CE, _data(), span=(0.0, math.inf)), "inf"),
    (
        lambda: landscape.sharpness(_model(), CE, _data(), rho=math.inf),
        "rho must be a finite number > 0, got inf",
    ),
    (lambda: landscape.sharpness(_model(), CE, _data(), rho=math.nan), "nan"),
    (lambda: landscape.sharpness(_model(), CE, _data(), rho=0.0), "0.0"),
    (lambda: landscape.sharpness(_model(), CE, _data(), step_size=math.inf), "step_size"),
    (lambda: landscape.average_flatness(_model(), CE, _data(), sigma=math.inf), "sigma"),
    (lambda: landscape.hessian_spectral_density(_model(), CE, _data(), sigma=math.nan), "sigma"),
]


@pytest.mark.parametrize("call, fragment", BAD_GEOMETRY, ids=[f"geo{i}" for i in range(len(BAD_GEOMETRY))])
def test_landscape_refuses_non_finite_values(call, fragment):
    with pytest.raises(ValueError, match=fragment):
        call()


_EMPTY = (torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))
EMPTY_DATA = {
    "hessian_eigenvalues": lambda: landscape.hessian_eigenvalues(_model(), CE, _EMPTY, k=1),
    "hessian_trace": lambda: landscape.hessian_trace(_model(), CE, _EMPTY, samples=2),
    "hessian_spectral_density": lambda: landscape.hessian_spectral_density(_model(), CE, _EMPTY),
    "hessian_vector_product": lambda: landscape.hessian_vector_product(_model(), CE, _EMPTY, torch.zeros(67)),
    "sharpness": lambda: landscape.sharpness(_model(), CE, _EMPTY),
    "average_flatness": lambda: landscape.average_flatness(_model(), CE, _EMPTY),
    "line": lambda: landscape.line(_model(), CE, _EMPTY, points=3),
    "plane": lambda: landscape.plane(_model(), CE, _EMPTY, points=(3, 3)),
    "interpolate": lambda: landscape.interpolate(_model(), _model(), CE, _EMPTY, points=3),
    "linear_barrier": lambda: landscape.linear_barrier(_model(), _model(), CE, _EMPTY),
    "empty batch among others": lambda: landscape.line(_model(), CE, [_data(), _EMPTY], points=3),
}


@pytest.mark.parametrize("name", sorted(EMPTY_DATA))
def test_landscape_refuses_empty_data(name):
    """Once ZeroDivisionError (Hessian, sharpness) or an all-NaN result (line, plane)."""
    with pytest.raises(ValueError, match="holds no examples"):
        EMPTY_DATA[name]()


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--span", "inf"], "--span must be a finite number > 0, got inf"),
        (["--span", "nan"], "--span must be a finite number > 0, got nan"),
        (["--span", "0"], "--span must be a finite number > 0, got 0.0"),
        (["--rho", "inf", "--kind", "sharpness"], "--rho must be a finite number > 0, got inf"),
        (["--rho", "nan", "--kind", "sharpness"], "--rho must be a finite number > 0, got nan"),
        (["--rho", "-0.1", "--kind", "sharpness"], "--rho must be a finite number > 0, got -0.1"),
    ],
)
def test_cli_landscape_refuses_bad_span_and_rho(args, fragment, tmp_path, capsys):
    assert main(["landscape", "ghost", "--store", str(tmp_path / "s.db"), *args]) == 2
    assert fragment in _one_error_line(capsys)


def test_cli_landscape_never_writes_outside_its_folder(tmp_path, monkeypatch, capsys):
    """A run id that is a path (a legacy row) cannot name the output folder; nothing is written anywhere."""
    import sqlite3

    work = tmp_path / "a" / "b" / "c"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    db = work / "s.db"
    train("logreg", optimizer="sgd", lr=0.1, steps=2, store=db, run_id="z", progress=False)
    con = sqlite3.connect(db)
    with con:
        con.execute("UPDATE runs SET id = '../../../z' WHERE id = 'z'")
        con.execute("UPDATE metrics SET run = '../../../z' WHERE run = 'z'")
    con.close()
    before = sorted(p for p in tmp_path.rglob("*"))
    assert main(["landscape", "../../../z", "--kind", "hessian", "--store", str(db)]) == 2
    assert "invalid run id" in _one_error_line(capsys)
    assert sorted(p for p in tmp_path.rglob("*")) == before


# ---------------------------------------------------------------------------------------------- task settings
BAD_TASK_OPTIONS = [
    ("imbalance", {"alpha": math.nan}, "alpha"),
    ("imbalance", {"alpha": math.inf}, "alpha"),
    ("imbalance", {"noise": math.nan}, "noise"),
    ("imbalance", {"alpha": "1"}, "alpha"),
    ("logreg", {"mu": math.inf}, "mu"),
    ("rosenbrock", {"a": math.nan}, "a must"),
    ("rosenbrock", {"b": math.inf}, "b must"),
    ("quadratic", {"kappa": math.inf}, "kappa"),
    ("quadratic", {"angle": math.nan}, "angle"),
    ("multiminima", {"bowl": math.nan}, "bowl"),
    ("multiminima", {"ripple": math.inf}, "ripple"),
    ("multiminima", {"frequency": math.nan}, "frequency"),
    ("charlm", {"context": 1_000_000}, "context 1000000"),
]


@pytest.mark.parametrize(
    "name, kw, fragment", BAD_TASK_OPTIONS, ids=[f"{n}-{k}" for n, k, _ in BAD_TASK_OPTIONS]
)
def test_task_options_are_checked(name, kw, fragment):
    with pytest.raises(ValueError, match=fragment) as info:
        tasks.get(name, **kw)
    assert name in str(info.value) and repr(next(iter(kw.values()))) in str(info.value)


@pytest.mark.parametrize(
    "task, option, fragment",
    [("imbalance", "alpha=nan", "alpha must be a finite number >= 0, got nan"),
     ("charlm", "context=1000000", "context 1000000 is longer than the text allows")],
)  # fmt: skip
def test_cli_task_options_exit_2(task, option, fragment, tmp_path, capsys):
    rc = main(
        ["train", "--task", task, "--task-set", option, "--steps", "1", "--store", str(tmp_path / "s.db")]
    )
    assert rc == 2
    assert fragment in _one_error_line(capsys)


# ------------------------------------------------------------------------------------------- bench and tour
@pytest.mark.parametrize("seed", ["-1", str(2**40)])
def test_bench_run_refuses_an_out_of_range_seed_before_running(seed, tmp_path, capsys):
    db = tmp_path / "b.db"
    rc = main(["bench", "run", "--algorithms", "adamw", "--workloads", "logreg", "--tuning", "self",
               "--seed", seed, "--store", str(db), "--no-progress", "--scale", "1"])  # fmt: skip
    assert rc == 2
    assert f"seed must be an integer in [0, 2147483647], got {seed}" in _one_error_line(capsys)
    if db.exists():
        with Store(db) as st:
            assert st.list_runs() == []


def test_tour_only_empty_is_refused(tmp_path, capsys):
    from descentlab.report.tour import select_studies

    with pytest.raises(ValueError, match="--only '' names no study"):
        select_studies(only="")
    with pytest.raises(ValueError, match="names no study"):
        select_studies(only=" , ")
    assert main(["tour", "--only", "", "--out", str(tmp_path / "t"), "--no-progress"]) == 2
    assert "names no study" in _one_error_line(capsys)
    assert not (tmp_path / "t").exists()
