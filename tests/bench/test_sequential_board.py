"""The sequential board (studies in blocks, a stopping rule declared in advance): checked on simulated boards."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from descentlab.bench.board import MIN_STUDIES, check_blocks, sequential_board, swap_floor

SIGMA, MISS, BUDGET = 0.5, 0.3, 5.0


def _full(rng, factors, S, W=4, N=5):
    """Simulated trial times ``[a][w] = (S, N)`` array: log-normal around ``factor``, 30 % misses (inf)."""
    out = {}
    for a, f in factors.items():
        out[a] = {}
        for j in range(W):
            t = np.exp(rng.normal(0.0, SIGMA, size=(S, N))) * f
            t[rng.random((S, N)) < MISS] = np.inf
            out[a][f"w{j}"] = t
    return out


def _fetcher(full, calls=None):
    def fetch(entrants, S):
        if calls is not None:
            calls.append((tuple(entrants), S))
        times = {a: {w: full[a][w][:S].tolist() for w in full[a]} for a in entrants}
        return times, dict.fromkeys(next(iter(full.values())), BUDGET), []

    return fetch


def test_a_clear_winner_resolves_early_and_stops_while_twins_run_to_the_last_block():
    rng = np.random.default_rng(0)
    full = _full(rng, {"base": 1.0, "twin": 1.0, "fast": 0.25}, 16)
    calls: list = []
    sq = sequential_board(_fetcher(full, calls), ["base", "twin", "fast"], [8, 12, 16], "base", n_boot=1000)
    first = sq["looks"][0]
    assert {("fast", "base"), ("fast", "twin")} <= set(first["resolved"])  # decided on the first block
    assert calls[0] == (("base", "twin", "fast"), 8)
    assert all("fast" not in c[0] for c in calls[1:])  # no more studies spent on it
    assert [c[1] for c in calls] == [8, 12, 16] and calls[-1][0] == ("base", "twin")  # the null pair runs on
    assert sq["studies_used"] == {"base": 16, "twin": 16, "fast": 8}
    assert sq["entrant_studies"] == 40 < sq["entrant_studies_fixed"] == 48
    assert sq["rank_interval"]["fast"] == (1, 1) and sq["rank_interval"]["base"] == (2, 3)
    pair = next(p for p in sq["pairs"] if {p["a"], p["b"]} == {"base", "twin"})
    assert not pair["separated"] and pair["look"] == 3 and pair["studies"] == 16
    assert all(lk["level"] == pytest.approx(0.1 / 3) for lk in sq["looks"])
    md = sq["markdown"]
    assert "| 1 | 8 | 3 |" in md and "fast > base" in md and "40 of the fixed design's 48" in md
    assert all(lk["decidable"] for lk in sq["looks"]) and "no pair could be separated" not in md


def test_a_look_too_early_for_the_swap_tests_floor_is_flagged_and_separates_nothing():
    """6 studies, 3 pairs, level 0.1 / 2: the exact swap test's smallest p (2 / 64) times 3 pairs is above it."""
    assert swap_floor(6) == pytest.approx(2 / 64) and swap_floor(20) == pytest.approx(1 / 4096)
    full = _full(np.random.default_rng(4), {"base": 1.0, "twin": 1.0, "fast": 0.1}, 12)
    sq = sequential_board(_fetcher(full), ["base", "twin", "fast"], [6, 12], "base", n_boot=500)
    assert not sq["looks"][0]["decidable"] and sq["looks"][0]["resolved"] == []
    assert sq["looks"][1]["decidable"] and "At look(s) 1 no pair could be separated" in sq["markdown"]


def test_the_board_stops_when_no_pair_is_open():
    rng = np.random.default_rng(1)
    full = _full(rng, {"base": 1.0, "fast": 0.2}, 24)
    calls: list = []
    sq = sequential_board(_fetcher(full, calls), ["base", "fast"], [8, 12, 24], "base", n_boot=1000)
    assert len(calls) == 1 and len(sq["looks"]) == 1 and sq["studies_used"] == {"base": 8, "fast": 8}


def _any_separated(reps: int, n_boot: int) -> int:
    """Boards of three identical entrants judged at three looks: how many separate any pair at any look."""
    rng = np.random.default_rng(2)
    hits = 0
    for r in range(reps):
        full = _full(rng, {"a": 1.0, "b": 1.0, "c": 1.0}, 12, W=2, N=3)
        sq = sequential_board(_fetcher(full), ["a", "b", "c"], [6, 9, 12], "a", n_boot=n_boot, seed=r)
        hits += any(p["separated"] for p in sq["pairs"])
    return hits


def test_family_wise_error_of_the_rule_on_identical_entrants_quick_look():
    """10 null boards: at most 3 with a false separation (P(>= 4 | 10, 0.1) = 0.013; the slow test checks 100)."""
    assert _any_separated(10, 200) <= 3


@pytest.mark.slow
def test_family_wise_error_of_the_rule_on_identical_entrants_is_at_most_its_level():
    """100 null boards: the share with any separated pair is not above the declared 10 % (one-sided binomial test)."""
    hits = _any_separated(100, 500)
    assert stats.binomtest(hits, 100, 0.1, alternative="greater").pvalue > 0.05, hits


@pytest.mark.parametrize(
    "blocks", [[], [3, 12], [12, 6], [6, 6], [6.0, 12], "6,12", [True, 12]], ids=lambda b: repr(b)
)
def test_bad_blocks_are_refused_naming_them(blocks):
    with pytest.raises(ValueError, match="blocks must be strictly increasing"):
        check_blocks(blocks)


def test_bad_input_names_the_value():
    full = _full(np.random.default_rng(3), {"base": 1.0, "x": 1.0}, 6)
    with pytest.raises(ValueError, match="baseline 'nadamw' is not among"):
        sequential_board(_fetcher(full), ["base", "x"], [6], "nadamw")
    with pytest.raises(ValueError, match="ci must be"):
        sequential_board(_fetcher(full), ["base", "x"], [6], "base", ci=1.5)

    def short(entrants, S):
        t, b, na = _fetcher(full)(entrants, S)
        return {a: {w: v[:-1] for w, v in row.items()} for a, row in t.items()}, b, na

    with pytest.raises(ValueError, match="fetch returned 5 studies, expected 6"):
        sequential_board(short, ["base", "x"], [MIN_STUDIES], "base", n_boot=200)


def test_bench_sequential_runs_the_blocks_and_replays_them_from_the_store(tmp_path):
    """`bench sequential` on the tiny workload: the first block runs every entrant, a resolved board stops there,
    --replay judges the same trials without running any, and a replay past the store's trials is refused."""
    import json

    from typer.testing import CliRunner

    from descentlab.bench.cli import bench_app

    common = ["-a", "adamw,sgd_nesterov", "-w", "tiny", "--trials", "1", "--store", str(tmp_path / "s.db"),
              "--scale", "1"]  # fmt: skip
    run = CliRunner().invoke(
        bench_app, ["sequential", *common, "--blocks", "6,7", "--out", str(tmp_path / "sq.md")]
    )
    assert run.exit_code == 0, run.output
    data = json.loads((tmp_path / "sq.json").read_text())
    assert data["looks"][0]["studies"] == 6 and data["blocks"] == [6, 7]
    assert set(data["studies_used"]) == {"adamw", "sgd_nesterov"}
    again = CliRunner().invoke(bench_app, ["sequential", *common, "--blocks", "6,7", "--replay"])
    assert again.exit_code == 0, again.output
    table = [ln for ln in (tmp_path / "sq.md").read_text().splitlines() if ln.startswith("| ")]
    assert table and all(ln in again.output for ln in table)  # the same looks, verdicts and speed-ups
    if len(data["looks"]) == 1:  # resolved at 6: a replay with a later second block needs no trial either
        late = CliRunner().invoke(bench_app, ["sequential", *common, "--blocks", "6,30", "--replay"])
        assert late.exit_code == 0, late.output
    missing = CliRunner().invoke(bench_app, ["sequential", *common, "--blocks", "8,9", "--replay"])
    assert isinstance(missing.exception, ValueError) and "not in the store" in str(missing.exception)
    bad = CliRunner().invoke(bench_app, ["sequential", *common, "--blocks", "3,7"])
    assert isinstance(bad.exception, ValueError) and "'3,7'" in str(bad.exception)


def test_a_fixed_board_too_small_for_its_pairs_says_so_and_separates_nothing():
    """5 entrants (10 pairs) on 6 studies: 10 x 2/64 > 0.1, so the board is blind whatever the data (a x10 winner
    included) and says how many studies it needs; on 10 studies (10 x 2/1024 <= 0.1) the note is gone."""
    from descentlab.bench.board import analyze

    rng = np.random.default_rng(7)
    factors = {"base": 1.0, "b": 1.0, "c": 1.0, "d": 1.0, "fast": 0.1}
    six = {a: {w: v[:6].tolist() for w, v in row.items()} for a, row in _full(rng, factors, 10).items()}
    bd = analyze(six, dict.fromkeys(six["base"], BUDGET), "base", n_boot=300)
    assert not any(p["separated"] for p in bd.pairs)
    assert "No pair can be separated on this board whatever the data" in bd.markdown()
    assert "Run at least 8 studies" in bd.note  # 10 x 2/256 = 0.078 <= 0.1
    ten = {a: {w: v.tolist() for w, v in row.items()} for a, row in _full(rng, factors, 10).items()}
    bd10 = analyze(ten, dict.fromkeys(ten["base"], BUDGET), "base", n_boot=300)
    assert bd10.note == "" and bd10.separated("fast", "base")
