"""A run killed with SIGKILL at a random step and resumed ends bit-identical to an uninterrupted run."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

import descentlab
from descentlab.train import checkpoint_dir, load_checkpoint

# optimizer name -> (lr, hparams); names not (yet) in the registry are skipped
CASES = {
    "adam": (1e-2, {}),
    "sgd": (0.05, {"momentum": 0.9}),
    "muon": (0.02, {}),
    "sam": (0.05, {}),
    "lookahead": (1e-2, {}),
    "shampoo": (1e-2, {}),
    "schedulefree_adamw": (1e-2, {}),
}
STEPS, EVERY = 60, 7

_CHILD = textwrap.dedent(
    """
    import os, signal, sys
    import descentlab
    from descentlab.train import Callback
    import json
    name, lr, hp, kill_at, db = sys.argv[1], float(sys.argv[2]), json.loads(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    def kill(ctx):
        if ctx.step == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
    descentlab.train("digits_mlp", optimizer=name, lr=lr, hparams=hp, steps=%d, eval_every=10, batch_size=32,
                     store=db, run_id=sys.argv[6], checkpoint_every=%d, callbacks=[Callback(kill, every=1)],
                     progress=False, device="cpu")
    """
    % (STEPS, EVERY)
)


# ~25 s each: the default run keeps one torch optimizer, one of ours and one from an external package; the others
# (their state_dict round trips are tested with each optimizer) run with `make test-all`.
DEFAULT_RUN = {"sgd", "muon", "schedulefree_adamw"}


@pytest.mark.parametrize(
    "name", [n if n in DEFAULT_RUN else pytest.param(n, marks=pytest.mark.slow) for n in CASES]
)
def test_sigkill_then_resume_is_bit_identical(name, tmp_path):
    if name not in descentlab.optim.available():
        pytest.skip(f"{name} not in the registry yet")
    lr, hp = CASES[name]
    kill_at = random.Random(name).randint(EVERY + 1, STEPS - 2)
    db, ref_db = tmp_path / "s.db", tmp_path / "ref.db"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def child(kill: int, store, run_id: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-c", _CHILD, name, str(lr), json.dumps(hp), str(kill), str(store), run_id],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )

    proc = child(kill_at, db, "victim")
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert descentlab.load_run("victim", db).status == "running"  # killed: nobody marked it
    # resume in a fresh process too, with the same thread count as the reference
    code = "import descentlab,sys; descentlab.resume('victim', store=sys.argv[1], progress=False)"
    res = subprocess.run(
        [sys.executable, "-c", code, str(db)], capture_output=True, text=True, timeout=300, env=env
    )
    assert res.returncode == 0, res.stderr[-2000:]
    ref = child(-1, ref_db, "ref")
    assert ref.returncode == 0, ref.stderr[-2000:]

    with descentlab.Store(db) as st:
        final = load_checkpoint(checkpoint_dir(st, "victim") / "final.pt")["model"]
    with descentlab.Store(ref_db) as st:
        want_model = load_checkpoint(checkpoint_dir(st, "ref") / "final.pt")["model"]
    for k, v in want_model.items():
        assert torch.equal(final[k], v), f"{name}: parameter {k} differs after resume"
    got, want = descentlab.load_run("victim", db), descentlab.load_run("ref", ref_db)
    assert got.status == "finished"
    for metric in ("loss", "accuracy", "batch_loss"):
        assert got.metrics(metric) == want.metrics(metric), metric
