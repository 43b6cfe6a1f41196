"""The page's multiplicity: the headline counts are Holm-adjusted over every claim of the page (raw beside them),
each study table shows Holm/BH verdicts, the design and the predictions' version; anchors show their band."""

from __future__ import annotations

import json
import re
from pathlib import Path

from statsmodels.stats.multitest import multipletests

from descentlab.report import write_report
from descentlab.studies.claims import Anchor, Prediction, SeedPlan, adjust, judge, verdict_counts


def _study(root: Path, name: str, values: list[list[float]]) -> tuple[Path, list[dict]]:
    preds = [Prediction(f"p{i}", f"claim {i}", "paper, Fig. 1", "x", ">", 0.0) for i in range(len(values))]
    claims = adjust([judge(p, v) for p, v in zip(preds, values)])
    anchor = Anchor("q", 2.0, "paper, Table 1", tolerance=1.5, reason="the paper's spread").judge(
        [2.0, 2.1, 1.9]
    )
    folder = root / name
    folder.mkdir(parents=True)
    summary = {
        "study": name,
        "slide": "seed 003, 'X'",
        "quick": True,
        "config": {"seeds": 5},
        "claims": claims,
        "checks": [],
        "anchors": [anchor],
        "design": SeedPlan.fixed(5).to_dict(),
        "preregistration": {
            "version": 2,
            "hash": "ab" * 32,
            "versions": [
                {"version": 1, "date": "2026-11-30", "changes": "first declared"},
                {"version": 2, "date": "2026-12-07", "changes": "margin declared"},
            ],
        },  # fmt: skip
        "multiplicity": {"alpha": 0.025},
        "figures": [],
        "runs": [],
        "seconds": 1.0,
    }
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder, claims


def test_headline_is_holm_over_the_page_with_raw_beside(tmp_path: Path) -> None:
    a, ca = _study(tmp_path, "alpha-study", [[0.5, 0.6, 0.55, 0.52, 0.58], [0.1, 0.5, 0.2, 0.45, 0.3]])
    b, cb = _study(tmp_path, "beta-study", [[0.2, 0.9, 0.1, 0.6, 0.4], [-0.5, -0.6, -0.55, -0.52, -0.58]])
    page = write_report(tmp_path / "out", [a, b]).read_text()
    ps = [c["p_value"] for c in ca + cb]
    reject, _, _, _ = multipletests(ps, alpha=0.025, method="holm")
    raw = verdict_counts(ca + cb)
    holm_holds = sum(r and c["verdict"] == "holds" for r, c in zip(reject, ca + cb))
    head = re.search(r'<p class="tally">(.*?)</p>', page, re.S).group(1)
    assert f"Holm-adjusted over the page: <b>{holm_holds} hold</b>" in head
    assert f"(raw: {raw['holds']} hold · {raw['fails']} fail · {raw['inconclusive']} inconclusive" in head
    assert "<th>Holm</th><th>BH</th><th>Holm, tour</th>" in page
    assert "Predictions version 2" in page and "v1 2026-11-30: first declared" in page
    assert "fixed 5 seeds" in page
    assert "the paper&#39;s spread" in page or "the paper's spread" in page  # the anchor's tolerance reason


def test_summaries_without_p_values_keep_the_raw_headline(tmp_path: Path) -> None:
    folder = tmp_path / "old"
    folder.mkdir()
    claims = [{"claim": "x", "holds": True, "verdict": "holds"}]
    (folder / "summary.json").write_text(json.dumps({"study": "old", "slide": "", "claims": claims}))
    page = write_report(tmp_path / "out", [folder]).read_text()
    assert "Holm-adjusted" not in page and "<b>1 hold</b>" in page


def test_tour_split_half_reports_agreement_and_holm_counts(tmp_path: Path, monkeypatch) -> None:
    import descentlab.studies as studies
    from descentlab.report.tour import run_tour, summary_table

    def run(ctx, cfg):
        seeds = studies.eval_seeds(cfg)
        return {}, {"p0": [1.0 + 0.01 * s for s in seeds], "p1": [(-1.0) ** s for s in seeds]}

    preds = (Prediction("p0", "an effect", "paper, Fig. 1", "x", ">", 0.0),
             Prediction("p1", "no effect", "paper, Fig. 2", "x", ">", 0.0))  # fmt: skip
    st = studies.Study("toy-tour", "toy", "seed 001, 'X'", {"seeds": 4}, {"seeds": 4}, run, predictions=preds)
    monkeypatch.setitem(studies._REGISTRY._entries, "toy-tour", (st, "toy"))
    res = run_tour(tmp_path / "t", quick=True, bench=False, only="toy-tour", progress=False, split_half=True)
    sh = json.loads((tmp_path / "t" / "studies" / "toy-tour" / "summary.json").read_text())["split_half"]
    assert sh["seeds_per_half"] == 4
    assert res.split_half["toy-tour"] == {"agree": sh["agree"], "of": 2, "seeds_per_half": 4}
    assert res.split_half["total"]["agreement"] == sh["agree"] / 2
    assert res.multiplicity["raw"]["holds"] == 1 and res.multiplicity["holm"]["holds"] <= 1
    summary_table(res)  # renders with the adjusted rows


def test_verdicts_table_adjusts_over_every_study_of_a_tour(tmp_path: Path) -> None:
    from descentlab.cli import main
    from descentlab.report.tour import verdict_rows, verdicts_markdown

    _, a = _study(
        tmp_path / "t" / "studies", "alpha", [[1.0, 1.2, 0.9, 1.1, 1.05], [0.1, -0.2, 0.3, 0.0, 0.05]]
    )
    _, b = _study(tmp_path / "t" / "studies", "beta", [[2.0, 2.1, 1.9, 2.2, 2.05]])
    rows = verdict_rows(tmp_path / "t")
    assert [(r["study"], r["name"]) for r in rows] == [("alpha", "p0"), ("alpha", "p1"), ("beta", "p0")]
    assert [r["verdict"] for r in rows] == [c["verdict"] for c in a + b]
    p = [c["p_value"] for c in a + b]
    holm = multipletests(p, alpha=0.025, method="holm")[0]
    assert [r["holm"] == "holds" for r in rows] == [
        bool(x) and c["verdict"] == "holds" for x, c in zip(holm, a + b)
    ]
    text = verdicts_markdown(tmp_path / "t")
    assert "3 predictions, hold / fail / inconclusive: raw" in text and "| alpha | `p0` v1 |" in text
    assert main(["verdicts", str(tmp_path / "t")]) == 0
    assert main(["verdicts", str(tmp_path / "nowhere")]) == 2
