import sys
from pathlib import Path

import pytest

# The program imports `components` from the project root, as `pulumi up` runs it.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.processes import built_binary

_REPORT: list[str] = []


def report(line: str) -> None:
    """A measured number or a stated limit, printed at the end of the run (not only on failure)."""
    if line not in _REPORT:
        _REPORT.append(line)


def pytest_terminal_summary(terminalreporter):
    if _REPORT:
        terminalreporter.section("measured in this run")
        for line in _REPORT:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def otelcol() -> str:
    return built_binary("OTELCOL_BIN", "scripts/build-collector.sh")


@pytest.fixture(scope="session")
def prometheus_bin() -> str:
    return built_binary("PROMETHEUS_BIN", "scripts/build-prometheus.sh")


@pytest.fixture(scope="session")
def promtool_bin() -> str:
    return built_binary("PROMTOOL_BIN", "scripts/build-prometheus.sh")


@pytest.fixture(scope="session")
def dev():
    """The real program run once under mocks against Pulumi.dev.yaml."""
    from tests.harness import run_program

    run = run_program("dev")
    assert run.error is None, run.error
    return run
