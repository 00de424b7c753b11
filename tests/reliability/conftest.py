"""The reliability suite's session plumbing.

- `table`: a session fixture every test records its fault row in (real counts).
- At session end `docs/RELIABILITY.md` is written from those rows, but only when every
  test in tests/reliability was collected, ran and passed. The table is printed in the
  terminal summary either way.
- The captured stderr and logging of every reliability test are kept for the privacy
  check (tests/reliability/test_zz_privacy.py), which also reads the live service's log.
"""
from __future__ import annotations

import datetime as _dt
import platform
import time
from pathlib import Path

import pytest

from tests.reliability.support import CAPTURED, REPEAT, FaultTable

HERE = Path(__file__).resolve().parent
DOC = HERE.parent.parent / "docs" / "RELIABILITY.md"

_table: FaultTable | None = None
_state = {"collected": set(), "deselected": set(), "passed": set(), "failed": set(), "skipped": set(),
          "started": time.time(), "written": None, "why_not": None}


def _mine(path) -> bool:
    try:
        return Path(str(path)).resolve().is_relative_to(HERE)
    except (OSError, ValueError):
        return False


@pytest.fixture(scope="session")
def table() -> FaultTable:
    global _table
    if _table is None:
        _table = FaultTable()
    return _table


@pytest.fixture
def rq_scheduler(live_service, services, settings) -> None:
    """For tests whose subject needs delayed jobs (retry back-offs) to run on time."""
    from tests.reliability.support import ensure_scheduler

    ensure_scheduler(live_service, services, settings)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session, config, items):
    _state["collected"] = {item.nodeid for item in items if _mine(item.path)}


def pytest_deselected(items):
    _state["deselected"].update(item.nodeid for item in items if _mine(item.path))


def pytest_runtest_logreport(report):
    if report.failed:
        _state["failed"].add(report.nodeid)
    elif report.skipped:
        _state["skipped"].add(report.nodeid)
    elif report.when == "call" and report.passed:
        _state["passed"].add(report.nodeid)
    text = "\n".join(part for part in (report.capstderr, report.capstdout, report.caplog) if part)
    if text:
        CAPTURED.append((report.nodeid, report.when, text))


def _why_not_complete() -> str | None:
    collected = _state["collected"]
    if not collected:
        return "no reliability test ran"
    files = {p.name for p in HERE.glob("test_*.py")}
    ran_files = {nodeid.split("::")[0].rsplit("/", 1)[-1] for nodeid in collected}
    if files - ran_files:
        return f"not every reliability file ran ({', '.join(sorted(files - ran_files))} missing)"
    if _state["deselected"]:
        return f"{len(_state['deselected'])} reliability tests were deselected"
    if _state["failed"]:
        return f"{len(_state['failed'])} reliability tests failed"
    if _state["skipped"]:
        return f"{len(_state['skipped'])} reliability tests were skipped"
    missing = collected - _state["passed"]
    if missing:
        return f"{len(missing)} reliability tests did not pass"
    return None


def render(table: FaultTable, tests: int, seconds: float) -> str:
    today = _dt.datetime.now(_dt.UTC)
    figures = "\n".join(f"- **{name}**: {text}" for name, text in table.figures.items())
    long = "; long variant" if REPEAT > 1 else ""
    return f"""# Reliability and security record

Produced by `tests/reliability/` on {today:%Y-%m-%d} at {today:%H:%M} UTC: {tests} tests, all passed, in
{seconds:.0f} s (repetition factor {REPEAT}{long}; Python {platform.python_version()}). Every figure below
is a count taken during that run against the real service (`python app.py`: gunicorn, RQ workers,
Redis, the MongoDB-wire store) with local fakes of Twilio, Stripe and Nominatim. Run it again with
`.venv/bin/python -m pytest tests/reliability -q`; `RELIABILITY_LONG=1` multiplies every repetition
count (x5, or `RELIABILITY_REPEAT=N`).

"Times" is how often the fault was injected (extra deliveries, kills, failed vendor calls,
fuzzed requests...). "What was lost" and "what was duplicated" compare the effects that were
due (texts at the fake Twilio, rescues, assignments, Checkout Sessions, receipts, recorded
messages, refused requests) with what happened: both must be nothing.

{table.markdown()}

## Figures

{figures or '- none recorded'}

This file is written only when every test in `tests/reliability/` ran and passed.
"""


def pytest_sessionfinish(session, exitstatus):
    why = _why_not_complete()
    _state["why_not"] = why
    if why is None and _table is not None and _table.rows:
        DOC.parent.mkdir(parents=True, exist_ok=True)
        DOC.write_text(render(_table, len(_state["collected"]), time.time() - _state["started"]))
        _state["written"] = str(DOC)


def pytest_terminal_summary(terminalreporter):
    if _table is None or not _state["collected"]:
        return
    tr = terminalreporter
    tr.section("reliability: faults injected, lost, duplicated")
    tr.write_line(_table.markdown())
    for name, text in _table.figures.items():
        tr.write_line(f"- {name}: {text}")
    if _state["written"]:
        tr.write_line(f"written to {_state['written']}")
    else:
        tr.write_line(f"docs/RELIABILITY.md NOT written: {_state['why_not']}")
