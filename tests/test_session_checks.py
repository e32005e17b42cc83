"""The session-wide checks' reporting (tests/session_checks.py): a failure found while a test ran
fails that test once, or is added to an already failed test's report."""

from __future__ import annotations

import pytest

from session_checks import report_failures


def _report(outcome: str, when: str = "call") -> pytest.TestReport:
    return pytest.TestReport("t.py::test", ("t.py", 0, "test"), {}, outcome, None, when)


def test_a_passing_test_with_failures_fails_once():
    failures = ["graph 'g' after the passes: text differs"]
    report = _report("passed")
    report_failures(report, failures, "IR text round trip")
    assert report.failed and "text differs" in str(report.longrepr) and failures == []
    again = _report("passed")
    report_failures(again, failures, "IR text round trip")
    assert again.passed


def test_a_failed_test_gets_a_section_and_teardown_is_left_alone():
    failures = ["model 'm': the direct file differs"]
    teardown = _report("passed", when="teardown")
    report_failures(teardown, failures, "direct TFLite cross-check")
    assert teardown.passed and failures
    report = _report("failed")
    report_failures(report, failures, "direct TFLite cross-check")
    assert report.failed and report.sections == [("direct TFLite cross-check", "model 'm': the direct file differs")]
