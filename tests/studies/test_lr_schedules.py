"""The `lr-schedules` study: quick variant runs, writes its figures and summary.json, and every claim holds."""

from __future__ import annotations

import json

import pytest

import descentlab.studies as studies
from descentlab import optim

NEEDED = {
    "sgd",
}
SCHEDULES = {"constant", "step", "exponential", "cosine", "linear", "warmup_cosine", "wsd"}


def _schedules() -> set[str]:
    from descentlab import schedules

    return set(getattr(schedules, "available", lambda: [])())


pytestmark = pytest.mark.skipif(
    not NEEDED <= set(optim.available()) or not SCHEDULES <= _schedules(),
    reason="optimizers or schedules not registered yet",
)


def test_lr_schedules_quick(tmp_path):
    res = studies.run("lr-schedules", quick=True, out=tmp_path, store=tmp_path / "s.db", progress=False)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["study"] == "lr-schedules"
    assert {"config", "numbers", "claims", "seconds"} <= set(summary)
    for stem in ["lr_schedules"]:
        assert (tmp_path / f"{stem}.png").exists() and (tmp_path / f"{stem}.svg").exists()
    assert summary["claims"], "the study checks at least one claim"
    failed = [c for c in res.claims if not c["holds"]]
    assert not failed, failed
