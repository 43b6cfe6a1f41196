"""The sgd-noise-floor study: quick variant's claims hold, outputs are written."""

from __future__ import annotations

import json

import descentlab.studies as studies


def test_quick_claims_hold(tmp_path):
    res = studies.run("sgd-noise-floor", quick=True, out=tmp_path, store=tmp_path / "s.db", progress=False)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary) >= {"study", "config", "numbers", "claims", "seconds"}
    assert len(summary["claims"]) == 5
    for claim in summary["claims"]:
        assert claim["holds"], claim
    assert (tmp_path / "sgd_noise_floor.png").exists() and (tmp_path / "sgd_noise_floor.svg").exists()
    n = res.summary["numbers"]
    # the plateau bound is the theorem's formula with the measured constants
    assert n["bound_plateau"]["0.1"] == n["L"] * n["sigma2"] * 0.1 / (4 * n["mu"])


def test_unknown_setting_is_refused(tmp_path):
    import pytest

    with pytest.raises(ValueError, match="has no setting 'alhpas'"):
        studies.run("sgd-noise-floor", quick=True, out=tmp_path, store=tmp_path / "s.db", alhpas=[0.1])
    with pytest.raises(ValueError, match="did you mean 'sgd-noise-floor'"):
        studies.run("sgd-noise-flor")
