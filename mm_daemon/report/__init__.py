"""Run reports: one self-contained HTML page per run, replay or sweep.

`render_run_report(RunData, path)` writes a run's page, `render_sweep_report(results, path)` a
sweep's comparison page; `data` holds the classes describing what they show.
"""

from mm_daemon.report.data import RunData, SweepResult
from mm_daemon.report.html import render_run_report, run_report_html
from mm_daemon.report.sweep import render_sweep_report, sweep_report_html

__all__ = [
    "RunData",
    "SweepResult",
    "render_run_report",
    "render_sweep_report",
    "run_report_html",
    "sweep_report_html",
]
