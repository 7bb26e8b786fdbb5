"""The commands of docs/reliability.md and docs/performance.md, checked against the code they name.

Their commands run minutes-long fault suites and benchmarks, so they are not run here as written; what rots in
such a command is a path, a test selection or a flag, and that is what runs here:

- reliability.md: each ``pytest`` command runs with ``--collect-only`` added (its paths and ``-k`` select
  tests: a renamed test or file fails here);
- both: a variable a command sets (``WCNOTIFY_FAULT_OUTAGE_S=60 …``) must be read somewhere in src/ or tests/;
- performance.md: each benchmark command (``wcnotify bench …`` or ``python bench/….py``) has its options
  parsed by the benchmark's own parser (``--help`` is not enough: it exits before unknown options are seen).
  The benchmarks themselves run with small sizes in test_relay_bench.py, test_fanout_bench.py and
  test_load_bench.py.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.integration.doc_runner import sh_commands
from wcnotify.cli import app

ROOT = Path(__file__).resolve().parents[2]


def _assert_variables_are_read(command: str) -> None:
    """Each ``NAME=value`` a doc command sets names a variable the code reads (a renamed one fails here)."""
    code = "\n".join(p.read_text() for d in ("src", "tests") for p in (ROOT / d).rglob("*.py"))
    for word in shlex.split(command.split("#", 1)[0]):
        name = word.split("=", 1)[0]
        if "=" in word and not word.startswith("-") and name.isupper():
            assert f'"{name}"' in code, (command, name)


def test_reliability_commands_select_the_fault_tests() -> None:
    commands = sh_commands(ROOT / "docs" / "reliability.md")
    assert len(commands) == 3, commands
    for command in commands:
        _assert_variables_are_read(command)
        words = shlex.split(command.split("#", 1)[0])
        env = {**os.environ, **dict(w.split("=", 1) for w in words if "=" in w and not w.startswith("-"))}
        words = [w for w in words if not ("=" in w and not w.startswith("-"))]
        assert words[0] == ".venv/bin/pytest", command
        done = subprocess.run([sys.executable, "-m", "pytest", *words[1:], "--collect-only", "-q",
                               "-p", "no:cacheprovider"], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=120, check=False)
        assert done.returncode == 0, done.stdout + done.stderr  # 5 when the selection is empty


def _bench_parsers() -> dict[str, object]:
    from wcnotify.bench import fanout, load, relay  # noqa: PLC0415 (heavy imports, only here)

    return {"relay": relay, "fanout": fanout, "load": load}


def test_performance_commands_name_real_options(monkeypatch: pytest.MonkeyPatch) -> None:
    commands = sh_commands(ROOT / "docs" / "performance.md")
    assert commands, "performance.md has no sh commands"
    runner = CliRunner()
    modules = _bench_parsers()
    for command in commands:
        _assert_variables_are_read(command)
        words = [w for w in shlex.split(command.split("#", 1)[0]) if "=" not in w or w.startswith("-")]
        if words[0] == ".venv/bin/wcnotify":
            assert words[1] == "bench", command
            # typer parses every option before the command runs: an unknown one exits 2 with a message
            result = runner.invoke(app, [*words[1:], "--help"])
            assert result.exit_code == 0, (command, result.output)
            for option in (w.split("=", 1)[0] for w in words[3:] if w.startswith("--")):
                assert option in result.output, (command, option)
        else:
            assert words[0] == ".venv/bin/python" and words[1].startswith("bench/"), command
            name = Path(words[1]).stem
            module = modules[name]
            captured: list[object] = []
            monkeypatch.setattr(module, "run", lambda options, _c=captured: _c.append(options) or _stop())
            with pytest.raises(_Stop):
                module.main(words[2:])  # type: ignore[attr-defined]
            assert captured, command


class _Stop(Exception):
    pass


def _stop() -> None:
    raise _Stop
