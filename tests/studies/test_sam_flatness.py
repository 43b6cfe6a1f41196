"""sam-flatness: the quick variant's claims hold and every solution's geometry is recorded."""

from __future__ import annotations

import json

import descentlab.studies as studies


def test_quick_claims_hold(tmp_path):
    res = studies.run("sam-flatness", quick=True, out=tmp_path, store=tmp_path / "s.db", progress=False)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert len(summary["claims"]) == 2
    for claim in summary["claims"]:
        assert claim["holds"], claim
    for key, row in res.summary["numbers"].items():
        assert set(row) == {"test_accuracy", "train_loss", "lambda_max", "sharpness", "average_flatness"}, key
        assert row["lambda_max"] > 0 and row["sharpness"] >= 0
    assert (tmp_path / "sam_flatness.png").exists()
