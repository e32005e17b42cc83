"""What the suite's session-wide checks (conftest.py's IR text round trip, direct_backend_check.py's
direct TFLite cross-check) share: failures found while a test ran turn that test's report into a
failure naming the check."""

from __future__ import annotations

import pytest

__all__ = ["report_failures"]


def report_failures(report: pytest.TestReport, failures: list[str], section: str) -> None:
    """A passing setup/call report with ``failures`` becomes a failure showing them; a failed one
    gets them as a section headed ``section``. ``failures`` is emptied (each is reported once)."""
    if not failures or report.when not in ("setup", "call"):
        return
    message = "\n\n".join(failures)
    failures.clear()
    if report.passed:
        report.outcome = "failed"
        report.longrepr = message
    else:
        report.sections.append((section, message))
