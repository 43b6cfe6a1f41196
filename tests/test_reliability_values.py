"""Issue 28, items 8, 9, 11 and 12: every refused run leaves no row, the values that used to be silently accepted
are refused naming the value, errors name the file or value, and the smaller holes (foreign databases, missing
stores, terminal escapes, the race viewer's selector, the MNIST-1D cache, connect()'s RNG, Rprop with lr 0) stay
closed. Output paths (item 10) are in tests/report/test_paths.py."""

from __future__ import annotations

import json
import math
import os
import re
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from descentlab import optim
from descentlab.cli import main
from descentlab.store import Store
from descentlab.train import resume, train


def _one_error_line(capsys: Any) -> str:
    err = capsys.readouterr().err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in err, err
    return lines[0]


def _rows(db: Path) -> list[tuple[str, str]]:
    with Store(db, read_only=True) as st:
        return [(r["id"], r["status"]) for r in st.list_runs()]


def _model() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))


# ------------------------------------------------------------------------- item 8: no row for a refused run
@pytest.mark.parametrize(
    ("kw", "fragment"),
    [
        (
            {"averaging": "ema", "averaging_kw": {"start": "x"}},
            "averaging_kw start must be an integer >= 0, got 'x'",
        ),
        ({"averaging": "swa", "averaging_kw": {"decay": 0.9}}, "averaging_kw ['decay'] not understood"),
        ({"averaging": "ema", "averaging_kw": {"decay": 1.0}}, "decay must be a number in (0, 1), got 1.0"),
        ({"seed": 10**15}, "seed must be an integer in [0, 2147483647], got 1000000000000000"),
        ({"seed": -1}, "got -1"),
        ({"device": "meta"}, "device 'meta' cannot train a model"),
        ({"device": "cpu:1"}, "device 'cpu:1' does not exist"),
        (
            {"optimizer": "sgd", "hparams": {"momentum": 0.9, "nesterov": 1.5}},
            "nesterov must be True or False, got 1.5",
        ),
        (
            {"optimizer": "sam", "hparams": {"base": "lbfgs"}},
            "SAM's base optimizer must step without a closure; LBFGS",
        ),
        (
            {"optimizer": "asam", "hparams": {"base": "sam"}},
            "base optimizer must step without a closure; SAM",
        ),
        (
            {"optimizer": "grokfast", "hparams": {"base": "lbfgs"}},
            "Grokfast's base optimizer must step without",
        ),
        ({"optimizer": "lookahead", "hparams": {"base": "nosuch"}}, "unknown optimizer 'nosuch'"),
    ],
)
def test_a_refused_run_leaves_no_row(kw: dict[str, Any], fragment: str, tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    Store(db).close()  # an existing, empty store: nothing may be added to it
    with pytest.raises((ValueError, TypeError)) as info:
        train("logreg", steps=2, store=db, run_id="r", progress=False, **kw)
    assert fragment in str(info.value)
    assert _rows(db) == [] and not (tmp_path / "checkpoints").exists()


def test_good_values_next_to_the_refused_ones_still_train(tmp_path: Path) -> None:
    """The checks refuse only what cannot be meant: the neighbouring good values train (must-pass cases)."""
    db = tmp_path / "s.db"
    for i, kw in enumerate([
        {"averaging": "ema", "averaging_kw": {"start": 1, "decay": 0.9}},
        {"seed": 2**31 - 1, "device": "cpu"},
        {"optimizer": "sgd", "hparams": {"momentum": 0.9, "nesterov": True, "foreach": None}},
        {"optimizer": "sam", "hparams": {"base": "adam", "p": math.inf}},  # p = inf is the max norm
        {"optimizer": "lookahead", "hparams": {"base": "lbfgs"}},  # Lookahead passes the closure on
    ]):  # fmt: skip
        assert train("logreg", steps=2, store=db, run_id=f"ok{i}", progress=False, **kw).status == "finished"
    assert len(_rows(db)) == 5


# ------------------------------------------------------------------------- item 9: refused, naming the value
@pytest.mark.parametrize(
    ("name", "hp"),
    [
        ("sgd", {"momentum": math.nan}),
        ("sgd", {"momentum": math.inf}),
        ("sgd", {"weight_decay": math.inf}),
        ("sgd", {"momentum": 0.9, "dampening": math.nan}),
        ("adam", {"weight_decay": math.inf}),
        ("adamw", {"weight_decay": math.nan}),
        ("adamw", {"eps": math.inf}),
        ("adam", {"betas": (0.9, math.inf)}),
        ("lookahead", {"weight_decay": math.inf}),
        ("sam", {"momentum": math.inf}),
        ("grokfast", {"lamb": math.nan}),
        ("muon", {"weight_decay": math.inf}),
    ],  # fmt: skip
)
def test_non_finite_hyper_parameters_are_refused(name: str, hp: dict[str, Any]) -> None:
    """inf passed torch's own range checks (``0 <= weight_decay``) and NaN some of them: refused, value named."""
    with pytest.raises(ValueError) as info:
        optim.create(name, _model(), lr=0.1, **hp)
    msg = str(info.value)
    assert ("nan" in msg or "inf" in msg) and (
        "must be finite" in msg or "Invalid" in msg or "must be a" in msg
    ), msg


@pytest.mark.parametrize(("key", "value"), [("foreach", "maybe"), ("fused", 1), ("maximize", "yes"),
                                            ("amsgrad", 1.0), ("capturable", None)])  # fmt: skip
def test_flags_must_be_booleans(key: str, value: Any) -> None:
    with pytest.raises(ValueError, match=re.escape(f"{key} must be True") + ".*" + re.escape(repr(value))):
        optim.create("adam", _model(), lr=0.1, **{key: value})
    optim.create("adam", _model(), lr=0.1, **{key: False})  # the same key with a boolean is fine


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--set", "momentum=nan", "-o", "sgd"], "momentum must be finite, got nan"),
        (["--set", "momentum=inf", "-o", "sgd"], "momentum must be finite, got inf"),
        (["--set", "weight_decay=nan"], "weight_decay must be finite, got nan"),
        (["--set", "weight_decay=inf"], "weight_decay must be finite, got inf"),
        (["--set", "foreach=maybe"], "foreach must be True, False or None, got 'maybe'"),
        (["--schedule", ""], "unknown schedule ''"),
        (["--device", "cpu:1"], "device 'cpu:1' does not exist"),
        (["--device", "meta"], "device 'meta' cannot train a model"),
        (
            ["--seed", "9223372036854775807"],
            "--seed must be an integer in [0, 2147483647], got 9223372036854775807",
        ),
        (["--set", "betas=0.9"], "betas must be 2 numbers such as (0.9, 0.999), got 0.9"),
        (["--set", "eps=x"], "eps must be a number (default 1e-08), got 'x'"),
    ],
)
def test_cli_train_refuses_the_value_before_touching_the_store(
    args: list[str], fragment: str, tmp_path: Path, capsys: Any
) -> None:
    db = tmp_path / "s.db"
    rc = main(["train", "-t", "logreg", "--steps", "2", "--store", str(db), "--no-progress", *args])
    assert rc == 2 and fragment in _one_error_line(capsys)
    assert not db.exists()


def test_bench_trial_refuses_a_point_no_run_could_use(tmp_path: Path, capsys: Any) -> None:
    db = tmp_path / "b.db"
    for point, fragment in (('{"lr": -1}', "lr must be a positive number, got -1"),
                            ('{"lr": 0.001, "weight_decay": NaN}', "weight_decay must be finite, got nan")):  # fmt: skip
        rc = main(["bench", "trial", "-a", "adamw", "-w", "logreg", "--tuning", "external", "--hparams", point,
                   "--store", str(db)])  # fmt: skip
        assert rc == 2 and fragment in _one_error_line(capsys)
    assert not db.exists() or _rows(db) == []


@pytest.mark.parametrize(("value", "fragment"), [("[]", "must list at least one value, got []"),
                                                 ('["a"]', "must be a list of numbers, got ['a']")])  # fmt: skip
def test_study_list_settings_refuse_empty_and_non_numbers(
    value: str, fragment: str, tmp_path: Path, capsys: Any
) -> None:
    """``--set alphas=[]`` was an IndexError after the study had started."""
    out = tmp_path / "study"
    rc = main(["study", "sgd-noise-floor", "--quick", "--set", f"alphas={value}", "--out", str(out),
               "--store", str(tmp_path / "s.db")])  # fmt: skip
    assert rc == 2 and fragment in _one_error_line(capsys)
    assert not (tmp_path / "s.db").exists() and not (out / "summary.json").exists()


def test_landscape_refuses_spans_that_overflow(tmp_path: Path, capsys: Any) -> None:
    from descentlab import landscape as ls
    from descentlab.cli import UsageError, _some_finite

    db = tmp_path / "s.db"
    train("logreg", steps=2, store=db, run_id="r", progress=False)
    rc = main(["landscape", "r", "--store", str(db), "--span", "1e308", "--out", str(tmp_path / "o")])
    assert rc == 2 and "got (-1e+308, 1e+308)" in _one_error_line(capsys)
    assert not (tmp_path / "o" / "line.json").exists()
    rc = main(["landscape", "r", "--store", str(db), "--seed", str(10**20), "--out", str(tmp_path / "o")])
    assert (
        rc == 2
        and "--seed must be an integer in [0, 2147483647], got 100000000000000000000"
        in _one_error_line(capsys)
    )
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
    with pytest.raises(ValueError, match="float32 parameters overflow"):
        ls.line(_model(), nn.functional.cross_entropy, (x, y), span=(-1e39, 1e39), points=3)
    with pytest.raises(UsageError, match=re.escape("every loss is NaN or infinite at --span 1e+30")):
        _some_finite(np.array([math.nan, math.inf]), 1e30)
    _some_finite(np.array([math.inf, 1.0]), 1.0)  # one finite point is a measurement


# ------------------------------------------------------------------------- item 11: clear errors
def _damage(db: Path, run_id: str, column: str, value: str) -> None:
    con = sqlite3.connect(db)
    con.execute(f"UPDATE runs SET {column}=? WHERE id=?", (value, run_id))
    con.commit()
    con.close()


def test_one_damaged_row_does_not_hide_the_store(tmp_path: Path, capsys: Any) -> None:
    db = tmp_path / "s.db"
    train("logreg", steps=2, store=db, run_id="good", progress=False)
    train("logreg", steps=2, store=db, run_id="bad", progress=False)
    _damage(db, "bad", "config", "{not json")
    assert main(["runs", "list", "--store", str(db)]) == 0
    out = capsys.readouterr().out
    assert "good" in out and "damaged (unreadable config)" in out
    assert main(["runs", "show", "bad", "--store", str(db)]) == 2
    assert (
        "run 'bad' in" in _one_error_line(capsys) and main(["runs", "show", "good", "--store", str(db)]) == 0
    )


def test_malformed_study_files_are_named_not_crashed_on(tmp_path: Path) -> None:
    from descentlab.report import write_report

    deep = tmp_path / "deep"
    deep.mkdir()
    (deep / "summary.json").write_text("[" * 100_000 + "]" * 100_000)  # RecursionError in json before
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "summary.json").write_text(json.dumps({"study": "methods-race", "claims": []}))
    (odd / "trajectories.json").write_text(json.dumps({"functions": {"f": 5}}))  # AttributeError before
    text = write_report(tmp_path / "page", [deep, odd]).read_text(encoding="utf-8")
    assert "unreadable summary.json: summary.json is nested too deeply to read" in text
    assert "trajectories.json is malformed: not the shape the race viewer draws" in text


@pytest.mark.parametrize(("content", "fragment"), [("{garbage", "is unreadable (JSONDecodeError"),
                                                   ('{"scale": "fast"}', "must be a positive number, got 'fast'"),
                                                   ('{"scale": NaN}', "got nan"), ("[1]", "got None")])  # fmt: skip
def test_a_corrupted_hardware_calibration_names_the_file(content: str, fragment: str, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from descentlab.bench.workloads import SCALE_ENV, hardware_scale

    monkeypatch.delenv(SCALE_ENV, raising=False)
    path = tmp_path / "bench_hardware.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=re.escape(repr(str(path)))) as info:
        hardware_scale(path)
    assert fragment in str(info.value)
    path.write_text('{"scale": 1.25}')
    assert hardware_scale(path) == 1.25


@pytest.mark.parametrize("change", ["dtype", "shape"])
def test_a_final_model_of_another_shape_or_dtype_is_named(change: str, tmp_path: Path, capsys: Any) -> None:
    """``landscape`` loads a run's final model: each tensor is checked (shape and dtype) and named, never a raw
    RuntimeError (optimizer states: ``optim.state_check``, issue 28 item 4)."""
    from descentlab.train import checkpoint_dir, load_checkpoint
    from descentlab.train.checkpoint import atomic_save

    db = tmp_path / "s.db"
    train("logreg", steps=2, store=db, run_id="r", progress=False)
    with Store(db, read_only=True) as st:
        path = checkpoint_dir(st, "r") / "final.pt"
    ck = load_checkpoint(path)
    name = sorted(ck["model"])[0]
    t = ck["model"][name]
    ck["model"][name] = t.double() if change == "dtype" else torch.zeros(t.shape[0] + 1, *t.shape[1:])
    atomic_save(ck, path)
    assert main(["landscape", "r", "--store", str(db), "--out", str(tmp_path / "o")]) == 2
    line = _one_error_line(capsys)
    assert f"tensor {name!r} is" in line and (
        "float64" in line if change == "dtype" else str(t.shape[0] + 1) in line
    )


def test_debug_works_after_the_subcommand(tmp_path: Path, capsys: Any) -> None:
    missing = str(tmp_path / "missing.db")
    assert main(["runs", "list", "--store", missing]) == 2
    assert "no store at" in _one_error_line(capsys)
    with pytest.raises(ValueError, match="no store at"):  # the traceback, as with --debug first
        main(["runs", "list", "--store", missing, "--debug"])
    with pytest.raises(ValueError, match="no store at"):
        main(["--debug", "runs", "list", "--store", missing])


def test_runs_list_shows_whole_ids_at_80_columns(tmp_path: Path, capsys: Any) -> None:
    db = tmp_path / "s.db"
    long_id = "x" * 100 + "-end"
    train("logreg", steps=2, store=db, run_id=long_id, progress=False)
    assert main(["runs", "list", "--store", str(db)]) == 0
    out = capsys.readouterr().out
    assert any(long_id in line for line in out.splitlines())


# ------------------------------------------------------------------------- item 12: smaller holes
def test_a_foreign_sqlite_file_is_refused_unchanged(tmp_path: Path, capsys: Any) -> None:
    db = tmp_path / "app.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE users(name TEXT)")
    con.execute("INSERT INTO users VALUES ('alice')")
    con.commit()
    con.close()
    before = db.read_bytes()
    with pytest.raises(ValueError, match="SQLite database of another program .*users"):
        Store(db)
    rc = main(["train", "-t", "logreg", "--steps", "2", "--store", str(db), "--no-progress"])
    assert rc == 2 and "not a descentlab store" in _one_error_line(capsys)
    assert db.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["app.db"]
    Store(tmp_path / "new.db").close()  # a new file still becomes a store


def test_resume_and_landscape_never_create_a_store(tmp_path: Path, capsys: Any) -> None:
    missing = tmp_path / "none" / "s.db"
    with pytest.raises(ValueError, match="no store at"):
        resume("r", store=missing)
    assert main(["resume", "r", "--store", str(missing)]) == 2
    capsys.readouterr()
    assert main(["landscape", "r", "--store", str(missing), "--out", str(tmp_path / "o")]) == 2
    assert "no store at" in _one_error_line(capsys)
    assert not missing.exists() and not missing.parent.exists()


def test_terminal_escapes_in_a_shared_store_never_reach_the_terminal(tmp_path: Path, capsys: Any) -> None:
    db = tmp_path / "s.db"
    train("logreg", steps=2, store=db, run_id="r", progress=False)
    evil = "\x1b]0;owned\x07\x1b[2J\x9b31m\u202e"
    con = sqlite3.connect(db)
    cfg = json.loads(con.execute("SELECT config FROM runs").fetchone()[0])
    cfg["optimizer"] = "adam" + evil
    con.execute("UPDATE runs SET config=?, note=?", (json.dumps(cfg), "note" + evil))
    con.commit()
    con.close()
    for args in (["runs", "list"], ["runs", "show", "r"], ["runs", "show", "r", "--json"]):
        assert main([*args, "--store", str(db)]) == 0
        out = capsys.readouterr().out
        assert not any(c in out for c in "\x1b\x07\x9b\u202e"), (args, out)
    assert main(["runs", "list", "--store", str(db)]) == 0
    assert "adam\\x1b]0;owned\\x07" in capsys.readouterr().out  # shown, as an escape


_DOM_SHIM = r"""
// A minimal DOM for race.js under node: enough elements, and selectors parsed strictly like a browser's.
"use strict";
const fs = require("fs");
const [script, dataPath] = process.argv.slice(2);
function parseSelector(sel) {
  const m = /^([a-z]*)(?:\.([a-z-]+))?(?:\[data-method='((?:[^'\\]|\\.)*)'\])?$/.exec(sel);
  if (!m) { throw new SyntaxError("'" + sel + "' is not a valid selector"); }
  return {tag: m[1], cls: m[2], method: m[3] === undefined ? undefined : m[3].replace(/\\(.)/g, "$1")};
}
class El {
  constructor(tag) { this.tagName = tag; this.children = []; this.dataset = {}; this.attrs = {}; this.className = "";
    this.style = {}; this.listeners = {}; this.options = []; this.value = ""; this.textContent = ""; }
  get firstChild() { return this.children[0] || null; }
  appendChild(c) { this.children.push(c); if (this.tagName === "select" && c.tagName === "option") { this.options.push(c); } return c; }
  removeChild(c) { this.children.splice(this.children.indexOf(c), 1); return c; }
  setAttribute(k, v) { this.attrs[k] = String(v); if (k === "class") { this.className = String(v); } }
  addEventListener(k, f) { this.listeners[k] = f; }
  all() { return this.children.flatMap((c) => [c, ...c.all()]); }
  querySelectorAll(sel) { const s = parseSelector(sel); return this.all().filter((e) =>
    (!s.tag || e.tagName === s.tag) && (!s.cls || e.className.split(" ").includes(s.cls)) &&
    (s.method === undefined || e.dataset.method === s.method)); }
  querySelector(sel) { return this.querySelectorAll(sel)[0] || null; }
}
const ids = {};
for (const [id, tag] of [["race", "div"], ["race-fn", "select"], ["race-lr", "input"], ["race-lr-label", "span"],
                         ["race-methods", "div"], ["race-image", "image"], ["race-paths", "g"], ["race-window", "p"],
                         ["race-data", "script"]]) { ids[id] = new El(tag); }
ids["race-data"].textContent = fs.readFileSync(dataPath, "utf8");
global.document = { getElementById: (id) => ids[id] || null, createElement: (t) => new El(t),
                    createElementNS: (ns, t) => new El(t) };
eval(fs.readFileSync(script, "utf8"));
const methods = ids["race-methods"].all().filter((e) => e.tagName === "select").map((e) => e.dataset.method);
console.log(JSON.stringify({paths: ids["race"].dataset.paths, methods: methods}));
"""


def _run_race(js: str, data: str, tmp_path: Path) -> dict[str, Any]:
    import subprocess

    for name, text in (("shim.js", _DOM_SHIM), ("race.js", js), ("data.json", data)):
        (tmp_path / name).write_text(text)
    res = subprocess.run(["node", str(tmp_path / "shim.js"), str(tmp_path / "race.js"), str(tmp_path / "data.json")],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    if res.returncode != 0:
        raise RuntimeError(res.stderr[-2000:] or "node failed")
    return json.loads(res.stdout)


def test_race_viewer_works_with_a_quote_in_a_method_name(tmp_path: Path) -> None:
    """A ``'`` in a method name broke ``querySelector("select[data-method='" + m + "']")`` (a SyntaxError in the
    browser, no trajectories drawn). The viewer runs under node with a small DOM whose selectors are parsed as
    strictly as a browser's; the old selector line fails there, the shipped script draws every method."""
    import shutil

    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "report_conftest", Path(__file__).parent / "report" / "conftest.py"
    )
    helpers = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(helpers)  # type: ignore[union-attr]
    make_study = helpers.make_study
    from descentlab.report import write_report

    folder = make_study(tmp_path / "studies", "methods-race", "seed 002, 'x'", [True], trajectories=True)
    traj = json.loads((folder / "trajectories.json").read_text())
    runs = traj["functions"]["rosenbrock"]["runs"]
    odd = 'it\'s ["gd"]'
    runs[odd] = runs.pop("gd")
    (folder / "trajectories.json").write_text(json.dumps(traj))
    page = write_report(tmp_path / "page", [folder]).read_text(encoding="utf-8")
    data = re.search(r'<script type="application/json" id="race-data">(.*?)</script>', page, re.S).group(1)
    js = (Path(__file__).resolve().parents[1] / "src/descentlab/report/templates/static/race.js").read_text()
    out = _run_race(js, data, tmp_path)
    assert odd in out["methods"] and int(out["paths"]) >= 1
    old = js.replace('var sel = byMethod("select", m), fin = byMethod("span.race-final", m);',
                     'var sel = controls.querySelector("select[data-method=\'" + m + "\']");\n'
                     'var fin = controls.querySelector("span.race-final[data-method=\'" + m + "\']");')  # fmt: skip
    assert old != js
    with pytest.raises(RuntimeError, match="SyntaxError: .* is not a valid selector"):  # the old bug, caught
        _run_race(old, data, tmp_path)


def test_a_wrong_mnist1d_cache_file_is_not_trusted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from descentlab.tasks import mnist1d

    def fake_make(num_samples: int, seed: int) -> tuple[np.ndarray, ...]:  # the generator's shapes, cheap
        g = np.random.default_rng(seed)
        n = int(round(0.8 * num_samples))
        return (g.standard_normal((n, 40)).astype(np.float32), g.integers(0, 10, n),
                g.standard_normal((num_samples - n, 40)).astype(np.float32), g.integers(0, 10, num_samples - n))  # fmt: skip

    calls: list[int] = []
    monkeypatch.setattr(mnist1d, "_make", lambda n, s: calls.append(s) or fake_make(n, s))
    monkeypatch.setenv("DESCENTLAB_CACHE", str(tmp_path))
    mnist1d._generate.cache_clear()
    try:
        mnist1d._generate(100, 2)
        mnist1d._generate(100, 1)
        assert calls == [2, 1]
        mnist1d._generate.cache_clear()
        assert all(
            (a == b).all() for a, b in zip(mnist1d._generate(100, 1), fake_make(100, 1))
        ) and calls == [2, 1]
        files = sorted(tmp_path.glob("mnist1d-*.npz"))
        one, two = (f for s in ("-s1.", "-s2.") for f in files if s in f.name)
        two.replace(one)  # seed 2's data, well shaped, under seed 1's name
        mnist1d._generate.cache_clear()
        got = mnist1d._generate(100, 1)
        assert calls == [2, 1, 1] and all((a == b).all() for a, b in zip(got, fake_make(100, 1)))
        with np.load(one) as f:  # the regenerated file, with one value altered but the record kept
            arrays = {k: f[k].copy() for k in f.files}
        arrays["x"][0, 0] += 1.0
        np.savez(one, **arrays)
        mnist1d._generate.cache_clear()
        got = mnist1d._generate(100, 1)
        assert calls == [2, 1, 1, 1] and (got[0] == fake_make(100, 1)[0]).all()
    finally:
        mnist1d._generate.cache_clear()


def test_connect_leaves_the_global_rng_alone_and_follows_its_seed() -> None:
    from descentlab.landscape import connect

    torch.manual_seed(0)
    a, b = (nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.ReLU(), nn.Linear(8, 3)) for _ in range(2))
    x, y = torch.randn(32, 4), torch.randint(0, 3, (32,))
    state = torch.get_rng_state()
    c1 = connect(a, b, nn.functional.cross_entropy, (x, y), steps=10, seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(99)  # another global state: the same curve
    c2 = connect(a, b, nn.functional.cross_entropy, (x, y), steps=10, seed=3)
    c3 = connect(a, b, nn.functional.cross_entropy, (x, y), steps=10, seed=4)
    assert torch.equal(c1.control_points, c2.control_points)
    assert not torch.equal(c1.control_points, c3.control_points)


def test_rprop_groups_with_lr_0_stay_frozen_and_the_rest_match_torch() -> None:
    """torch's Rprop seeds its step sizes from lr and clamps them up to step_sizes[0] = 1e-6, so a group with lr 0
    moved; ours keeps it frozen (the registry's lr-0 convention) and steps every other group as torch does."""
    torch.manual_seed(0)
    a, b = torch.randn(5, requires_grad=True), torch.randn(5, requires_grad=True)
    b_ref = b.detach().clone().requires_grad_(True)
    a0 = a.detach().clone()
    opt = optim.create("rprop", [{"params": [a], "lr": 0.0}, {"params": [b]}], lr=0.01)
    ref = torch.optim.Rprop([b_ref], lr=0.01)  # the reference: torch on the moving group alone
    for _ in range(6):
        opt.zero_grad()
        ref.zero_grad()
        ((a**2).sum() + (b**3).sum()).backward()
        (b_ref**3).sum().backward()
        opt.step()
        ref.step()
    assert torch.equal(a, a0) and a.grad is not None  # frozen, its gradient left for the caller
    assert torch.equal(b, b_ref) and not torch.equal(b, b_ref.detach() * 0)
    plain = torch.optim.Rprop([{"params": [a], "lr": 0.0}], lr=0.01)  # why: torch's own moves it
    plain.step()
    plain.step()
    assert not torch.equal(a, a0)


def test_interrupted_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    from descentlab import safe_write

    target = tmp_path / "out.json"
    safe_write.write_text(target, "old")
    with pytest.raises(KeyboardInterrupt), safe_write.atomic_open(target, "w") as f:
        f.write("half")
        raise KeyboardInterrupt
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["out.json"]
