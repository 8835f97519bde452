"""In CI, a skip is a failure unless it is one CI machines are known to take.

CI's machines have no GPU and no full TensorRT, and their CPU changes (with or without native bf16): those skips
are expected. Any other (a pinned package missing, chromium missing, a test that skips where it should run)
would hide a failure, so with ``CI`` set (CI sets CI=true) the run fails and lists them. Loaded by conftest.py.
"""

from __future__ import annotations

import os
import re

import pytest

#: Skip reasons CI accepts (regular expressions searched in the reason).
EXPECTED_SKIPS = (
    r"needs a CUDA GPU",
    r"needs \d+ GiB of GPU memory",
    r"needs TensorRT\b",
    r"this machine has a CUDA GPU",  # the no-GPU side of a test, on a machine with one
    r"this CPU runs bf16 natively",  # the refusal of make bf16-check, which only a CPU without it shows
    r"OpenVINO does not run bf16 on this CPU",  # a CPU without AVX-512, where OpenVINO compiles fp32 instead
)

_skipped: list[tuple[str, str]] = []


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


def unexpected(skips: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The (test, reason) pairs whose reason matches none of EXPECTED_SKIPS."""
    return [(test, reason) for test, reason in skips if not any(re.search(p, reason) for p in EXPECTED_SKIPS)]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _skipped.append((report.nodeid, reason.removeprefix("Skipped: ")))


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER") or not _in_ci():
        return  # the controller judges the whole run's skips (workers report theirs to it)
    if found := unexpected(_skipped):
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        lines = [f"CI: {len(found)} unexpected skip(s): only GPU/TensorRT skips are expected here"]
        lines += [f"  {test}: {reason}" for test, reason in found]
        for line in lines:
            if reporter is not None:
                reporter.write_line(line, red=True)
            else:
                print(line)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
