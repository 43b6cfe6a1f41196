"""The report: one self-contained HTML page from study folders, a benchmark report and the store; the tour.

``write_report(out, studies=[...], bench=..., store=...)`` builds ``<out>/index.html`` from existing outputs;
``run_tour(out, quick=True)`` runs every registered study (and a small benchmark) first.
"""

from __future__ import annotations

from descentlab.report.html import (
    BenchSection,
    StudySection,
    build_page,
    load_bench,
    load_runs,
    load_study,
    write_report,
)
from descentlab.report.tour import TourEntry, TourResult, run_tour, select_studies

__all__ = [
    "BenchSection",
    "StudySection",
    "TourEntry",
    "TourResult",
    "build_page",
    "load_bench",
    "load_runs",
    "load_study",
    "run_tour",
    "select_studies",
    "write_report",
]
