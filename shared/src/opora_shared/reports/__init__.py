"""The monthly client report: built from the event history, rendered as self-contained HTML."""

from opora_shared.reports.build import MonthlyReport, build_report, month_bounds
from opora_shared.reports.render import render_html

__all__ = ["MonthlyReport", "build_report", "month_bounds", "render_html"]
