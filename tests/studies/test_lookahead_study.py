"""The `lookahead` study: quick variant runs, writes its figures and summary.json, and every claim holds."""

from __future__ import annotations

import json

import pytest

import descentlab.studies as studies
from descentlab import optim

NEEDED = {
    "sgd",
    "adam",
}
pytestmark = pytest.mark.skipif(
    not NEEDED <= set(optim.available()), reason=f"optimizers {sorted(NEEDED)} not registered yet"
)


def test_lookahead_study_quick(tmp_path):
    res = studies.run("lookahead", quick=True, out=tmp_path, store=tmp_path / "s.db", progress=False)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["study"] == "lookahead"
    assert {"config", "numbers", "claims", "seconds"} <= set(summary)
    for stem in ["lookahead"]:
        assert (tmp_path / f"{stem}.png").exists() and (tmp_path / f"{stem}.svg").exists()
    assert summary["claims"], "the study checks at least one claim"
    failed = [c for c in res.claims if not c["holds"]]
    assert not failed, failed
