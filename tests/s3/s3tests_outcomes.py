"""A pytest plugin of SelfDB's harness (not part of s3-tests): writes one
JSON line per test phase to $S3TESTS_OUTCOMES, so the harness reads each
test's outcome from a file instead of parsing pytest's console output."""

import json
import os

_out = None


def pytest_configure(config):
    global _out
    path = os.environ.get("S3TESTS_OUTCOMES")
    if path:
        _out = open(path, "w", buffering=1)


def pytest_runtest_logreport(report):
    if _out is None:
        return
    outcome = report.outcome
    if report.when == "call" and hasattr(report, "wasxfail"):
        outcome = "xfail" if report.skipped else "xpass"
    line = {"name": report.nodeid.rsplit("::", 1)[-1], "when": report.when, "outcome": outcome}
    if report.failed:
        line["why"] = str(report.longrepr.reprcrash.message if hasattr(report.longrepr, "reprcrash") and report.longrepr.reprcrash else report.longrepr)[:300]
    _out.write(json.dumps(line) + "\n")


def pytest_unconfigure(config):
    if _out is not None:
        _out.close()
