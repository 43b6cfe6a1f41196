"""StudyContext.train(keep_state=False): a run whose weights nothing reads keeps no final.pt and no end state, and
a second execution of the study reuses it from its stored metrics."""

from __future__ import annotations

from descentlab.store import Store
from descentlab.studies import StudyContext


def test_a_run_without_state_is_stored_lean_and_reused(tmp_path) -> None:
    with Store(tmp_path / "s.db") as st:
        kw = dict(steps=6, eval_every=3, seed=1, lr=0.1, optimizer="sgd")
        first = StudyContext("lean", tmp_path, st, True, key="k").train("logreg", keep_state=False, **kw)
        folder = st.checkpoint_dir(first.id)
        assert first.status == "finished"
        assert not (folder / "final.pt").exists() and not (folder / "last.pt").exists()
        again_ctx = StudyContext("lean", tmp_path, st, True, key="k")
        again = again_ctx.train("logreg", keep_state=False, **kw)
        assert again_ctx.reused == [first.id] and again.id == first.id
        assert again.metrics("loss") == first.metrics("loss")
        other_ctx = StudyContext("lean", tmp_path, st, True, key="k")  # another configuration: trained again
        other = other_ctx.train("logreg", keep_state=False, **{**kw, "lr": 0.05})
        assert other_ctx.reused == [] and other.config["lr"] == 0.05
