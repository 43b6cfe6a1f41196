"""sam-flatness: the quick variant's claims hold and every solution's geometry is recorded."""

from __future__ import annotations

import json

import pytest

import descentlab.studies as studies
from descentlab.studies.sam_flatness import METRICS, lambda_ratio


def test_quick_claims_hold(tmp_path):
    res = studies.run("sam-flatness", quick=True, out=tmp_path, store=tmp_path / "s.db", progress=False)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert len(summary["claims"]) == 2
    for claim in summary["claims"]:
        assert claim["holds"], claim
    numbers = res.summary["numbers"]
    for noise in ("0", "0.2"):
        for label in ("SGD", "SAM ρ=0.2", "SAM ρ=0.5", "ASAM ρ=1"):
            row = numbers[f"{noise}/{label}"]
            assert set(METRICS) <= set(row), (noise, label)
            assert row["lambda_max"] > 0 and row["sharpness"] >= 0 and 0 < row["test_accuracy"] < 1
        # the recorded ratio is the ratio of the recorded eigenvalues
        assert numbers["lambda_ratio_main"][noise] == pytest.approx(
            numbers[f"{noise}/SAM ρ=0.5"]["lambda_max"] / numbers[f"{noise}/SGD"]["lambda_max"]
        )
    for stem in ("sam_flatness", "sam_flatness_planes"):
        assert (tmp_path / f"{stem}.png").exists()


def test_lambda_ratio_and_bad_main_rho(tmp_path):
    numbers = {"0/SGD": {"lambda_max": 4.0}, "0/SAM ρ=0.5": {"lambda_max": 1.0}}
    assert lambda_ratio(numbers, 0.0, "SAM ρ=0.5") == 0.25
    with pytest.raises(ValueError, match="rho"):
        studies.run(
            "sam-flatness", quick=True, out=tmp_path, store=tmp_path / "s.db", progress=False, rho=0.3
        )
