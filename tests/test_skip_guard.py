"""tests/skip_guard.py: in CI, only the skips CI machines are known to take pass."""

from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

SUITE = """
import pytest

def test_runs():
    pass

def test_needs_a_gpu():
    pytest.skip("needs a CUDA GPU (torch.cuda.is_available() is False)")

def test_needs_chromium():
    pytest.skip("no chromium at /usr/bin/chromium")
"""


@pytest.fixture
def run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PYTHONPATH", str(TESTS))
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)

    def run(source: str, ci: str | None) -> pytest.RunResult:
        if ci is None:
            monkeypatch.delenv("CI", raising=False)
        else:
            monkeypatch.setenv("CI", ci)
        pytester.makepyfile(test_suite=source)
        return pytester.runpytest_subprocess("-p", "skip_guard", "-p", "no:cacheprovider")

    return run


def test_in_ci_an_unexpected_skip_fails_the_run_and_is_named(run):
    result = run(SUITE, ci="true")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        ["*CI: 1 unexpected skip(s)*", "*test_needs_chromium: no chromium at /usr/bin/chromium"]
    )
    assert "test_needs_a_gpu" not in result.stdout.str().split("unexpected skip")[1]


def test_expected_skips_pass_in_ci_and_any_skip_passes_elsewhere(run):
    only_gpu = SUITE.replace('pytest.skip("no chromium at /usr/bin/chromium")', "pass")
    assert run(only_gpu, ci="true").ret == pytest.ExitCode.OK
    assert run(SUITE, ci=None).ret == pytest.ExitCode.OK
