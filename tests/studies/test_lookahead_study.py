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


def test_robustness_judges_only_where_either_trains():
    """Hand-computed: an lr where both diverge is left out of both the largest-lr and the spread comparisons."""
    import math

    from descentlab.studies.lookahead_study import robustness

    inf = math.inf
    lrs = [0.1, 0.3, 1.0, 3.0]
    i, plain, look, note = robustness(lrs, [0.2, 0.1, 0.4, inf], [0.25, 0.1, 0.2, inf])
    assert i == 2 and plain == pytest.approx(4.0) and look == pytest.approx(2.5)
    assert "at lr=1" in note and "both diverge at lr=3: not judged" in note
    i, plain, look, note = robustness(lrs, [0.2, 0.1, inf, inf], [0.2, 0.1, 0.3, inf])
    assert i == 2 and plain == inf and look == pytest.approx(3.0)  # only Lookahead trains at lr=1
    i, plain, look, note = robustness(lrs, [0.2, 0.1, 0.4, 0.8], [0.2, 0.1, 0.2, 0.4])
    assert i == 3 and plain == pytest.approx(8.0) and look == pytest.approx(4.0) and "not judged" not in note
    i, plain, look, _ = robustness([0.1], [inf], [inf])  # nothing trains: nothing holds
    assert i == 0 and plain == look == inf
