"""Determinism, Ctrl-C handling and the `--set` grammar (property-based)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import descentlab
from descentlab.cli import UsageError, parse_sets, parse_value


@pytest.mark.parametrize("name, kw", [("adam", {}), ("muon", {}), ("sam", {}), ("schedulefree_adamw", {})])
def test_same_seed_twice_gives_identical_metrics(name, kw):
    runs = [
        descentlab.train(
            "digits_mlp",
            optimizer=name,
            lr=1e-2,
            hparams=kw,
            steps=30,
            eval_every=10,
            batch_size=32,
            seed=3,
            store=False,
            progress=False,
            device="cpu",
        )
        for _ in range(2)
    ]
    for metric in ("batch_loss", "loss", "accuracy"):
        assert runs[0].metrics(metric) == runs[1].metrics(metric)
    other = descentlab.train(
        "digits_mlp",
        optimizer=name,
        lr=1e-2,
        hparams=kw,
        steps=30,
        eval_every=10,
        batch_size=32,
        seed=4,
        store=False,
        progress=False,
        device="cpu",
    )
    assert other.metrics("batch_loss") != runs[0].metrics("batch_loss")


_CTRL_C = textwrap.dedent(
    """
    import os, signal, sys
    import descentlab
    from descentlab.train import Callback

    def interrupt(ctx):
        if ctx.step == 17:
            signal.raise_signal(signal.SIGINT)  # in this (the main) thread: os.kill may land on a worker thread

    run = descentlab.train("digits_mlp", optimizer="adam", steps=40, eval_every=10, batch_size=32, store=sys.argv[1],
                           run_id="ctrlc", callbacks=[Callback(interrupt, every=1)], progress=False, device="cpu")
    print(run.status)
    """
)


def test_ctrl_c_marks_interrupted_and_leaves_it_resumable(tmp_path):
    db = tmp_path / "s.db"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", _CTRL_C, str(db)], capture_output=True, text=True, timeout=300, env=env
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().endswith("interrupted")
    run = descentlab.load_run("ctrlc", db)
    assert run.status == "interrupted" and "resume" in run.note
    code = (
        "import descentlab,sys; print(descentlab.resume('ctrlc', store=sys.argv[1], progress=False).status)"
    )
    res = subprocess.run(
        [sys.executable, "-c", code, str(db)], capture_output=True, text=True, timeout=300, env=env
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip() == "finished"
    done = descentlab.load_run("ctrlc", db)
    assert done.status == "finished" and done.final["step"] == 40


_keys = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True)
_scalars = st.one_of(
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False, width=64).filter(lambda f: f == f),
    st.booleans(),
)


def _text(v):
    return str(v).lower() if isinstance(v, bool) else repr(v)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(_keys, st.one_of(_scalars, st.tuples(_scalars, _scalars)), max_size=5))
def test_set_grammar_round_trips(values):
    items = [
        f"{k}={','.join(_text(x) for x in v) if isinstance(v, tuple) else _text(v)}"
        for k, v in values.items()
    ]
    parsed = parse_sets(items)
    assert parsed.keys() == values.keys()
    for k, v in values.items():
        got = parsed[k]
        if isinstance(v, tuple):
            assert isinstance(got, tuple) and len(got) == 2
            for a, b in zip(got, v):
                assert a == b and type(a) is type(b) or (isinstance(b, float) and float(a) == b)
        else:
            assert got == v and (type(got) is type(v) or (isinstance(v, float) and float(got) == v))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=20))
def test_set_grammar_never_crashes(text):
    try:
        parse_sets([text])
    except UsageError as exc:
        assert "\n" not in str(exc)


@given(st.text(alphabet='[{"]}:,1', min_size=1, max_size=6).filter(lambda t: t[0] in '[{"'))
def test_malformed_json_values_are_usage_errors(text):
    try:
        expected = json.loads(text)
    except json.JSONDecodeError:
        with pytest.raises(UsageError, match="malformed JSON"):
            parse_value(text)
    else:
        assert parse_value(text) == expected
