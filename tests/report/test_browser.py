"""The report in a real browser (Debian's chromium through Playwright): sections render, images load, the
methods-race viewer responds to clicks, no console errors. Saves test-artifacts/report.png."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from descentlab.report import write_report

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture
def browser():  # type: ignore[no-untyped-def]
    sync_api = pytest.importorskip(
        "playwright.sync_api",
        reason="playwright is not installed (pip install playwright; no `playwright install`)",
    )
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def test_report_renders_and_race_responds(browser, fabricated: dict[str, Path]) -> None:  # type: ignore[no-untyped-def]
    page_path = write_report(
        fabricated["tmp"] / "out",
        [fabricated["studies"]],
        bench=fabricated["bench"],
        store=fabricated["store"],
        run_ids=["run-*"],
    )
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(page_path.resolve().as_uri())
    page.wait_for_load_state("load")

    for sid in (
        "study-sgd-noise-floor",
        "study-methods-race",
        "study-lookahead",
        "study-broken-study",
        "selected-runs",
        "bench",
        "runs",
    ):
        box = page.locator(f"section#{sid}").bounding_box()
        assert box is not None and box["height"] > 50 and box["width"] > 300, (sid, box)
    assert page.locator("section#study-broken-study .error").inner_text().startswith("RuntimeError: boom")
    heights = page.eval_on_selector_all("section", "els => els.map(e => e.getBoundingClientRect().height)")
    assert len(heights) == 7 and min(heights) > 50, heights  # no other section, none collapsed

    widths = page.eval_on_selector_all("img", "els => els.map(e => e.complete ? e.naturalWidth : 0)")
    assert len(widths) == 6 and all(w > 0 for w in widths), widths  # 4 PNG figures, 1 GIF, the runs' curves

    # the race viewer: contour image loaded, default methods drawn, a click on an optimizer changes the paths
    paths = page.locator("#race-paths .traj-path")
    n0 = paths.count()
    assert n0 == 3, n0  # gd, heavy ball, adam ticked by default
    assert page.eval_on_selector("#race-image", "e => e.getBBox().width") == 400
    points0 = page.get_attribute("#race-paths .traj-path[data-method='gd']", "points")
    page.locator("#race-methods input[data-method='adam']").click()
    assert paths.count() == n0 - 1
    page.locator("#race-methods input[data-method='adam']").click()
    assert paths.count() == n0
    # a different lr for GD draws a different path and shows its final loss
    page.select_option("#race-methods select[data-method='gd']", "0.0003")
    assert page.get_attribute("#race-paths .traj-path[data-method='gd']", "points") != points0
    assert "final f = " in page.inner_text("#race-methods .race-final[data-method='gd']")
    # the slider moves every method to the first point of its grid
    page.eval_on_selector("#race-lr", "e => { e.value = '0'; e.dispatchEvent(new Event('input')); }")
    assert page.eval_on_selector("#race-methods select[data-method='adam']", "e => e.value") == "0.01"

    ARTIFACTS.mkdir(exist_ok=True)
    page.locator("section#study-methods-race").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
    shutil.copy(page_path, ARTIFACTS / "report.html")
    assert errors == [], errors
    assert all(u.startswith(("file:", "data:")) for u in requests), requests


SCRIPT = "<script>alert(1)</script>"


def test_user_text_is_shown_as_text_and_verdicts_render(
    browser, tmp_path: Path, verdict_maker, anchors
) -> None:  # type: ignore[no-untyped-def]
    """A run id, a config value and summary texts holding a script tag are shown as text (no script runs); the
    three-valued claims table, the checks and the Reproduction table render. Saves test-artifacts/report-verdicts.png."""
    import json
    import sqlite3

    from descentlab.store import Store

    root = tmp_path / "studies"
    folder = verdict_maker(root, "double-descent", "seed 004, 'Double descent'", ["holds", "fails", "inconclusive"],
                           checks=[True, False], anchors=anchors)  # fmt: skip
    summary = json.loads((folder / "summary.json").read_text())
    summary["claims"][0]["claim"] = SCRIPT
    summary["config"]["note"] = SCRIPT
    (folder / "summary.json").write_text(json.dumps(summary))
    store = tmp_path / "s.db"
    with Store(store) as st:
        st.create_run("plain", {"task": "logreg", "optimizer": SCRIPT, "lr": 0.1, "steps": 10})
    with sqlite3.connect(store) as con:  # a store written before run ids were validated
        con.execute("UPDATE runs SET id = ? WHERE id = 'plain'", (SCRIPT,))
    page_path = write_report(tmp_path / "out", [root], store=store)

    page = browser.new_page(viewport={"width": 1200, "height": 900})
    dialogs: list[str] = []
    errors: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(page_path.resolve().as_uri())
    page.wait_for_load_state("load")
    assert dialogs == [] and errors == []
    assert page.eval_on_selector_all("script", "els => els.length") == 0  # no race here: no script at all
    cells = page.eval_on_selector_all("section#runs td", "els => els.map(e => e.textContent)")
    assert cells[0] == SCRIPT and cells[3] == SCRIPT  # the run id and the optimizer, as text
    first = page.locator("section#study-double-descent table.claims tbody tr").first
    assert first.locator(".statement").inner_text() == SCRIPT
    verdicts = page.eval_on_selector_all(
        "section#study-double-descent table.claims tbody tr", "els => els.map(e => e.dataset.verdict)"
    )
    assert verdicts == ["holds", "fails", "inconclusive"]
    colours = page.eval_on_selector_all(
        "section#study-double-descent table.claims .badge",
        "els => els.map(e => getComputedStyle(e).backgroundColor)",
    )
    assert len(set(colours)) == 3, colours  # three verdicts, three colours
    assert page.locator("section#reproduction table tbody tr").count() == len(anchors)
    assert page.locator("section#study-double-descent ul.checks li").count() == 2
    header = page.inner_text("header")
    assert "3 claims: 1 hold · 1 fail · 1 inconclusive" in header
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report-verdicts.png"), full_page=True)
