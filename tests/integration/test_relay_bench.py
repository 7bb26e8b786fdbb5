"""``wcnotify bench relay`` runs end to end (tiny load) and prints its table and a JSON line; no timing asserted."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

WCNOTIFY = shutil.which("wcnotify", path=str(Path(sys.executable).parent)) or "wcnotify"


def test_bench_relay_cli_prints_table_and_json() -> None:
    done = subprocess.run(
        [WCNOTIFY, "bench", "relay", "--pairs", "2", "--seconds", "0.3", "--idle", "20"],
        capture_output=True, text=True, timeout=180, check=True,
    )
    lines = done.stdout.strip().splitlines()
    result = json.loads(lines[-1])
    assert "relay / forward (max rate)" in done.stdout
    for kind in ("relay", "forward"):
        for phase in ("max", "half"):
            assert result[kind][phase]["errors"] == 0
            assert result[kind][phase]["delivered"] > 0
    # the bare server also runs at the relay's half rate: the machine's own latency floor at that load
    at = result["forward"]["at_relay_half"]
    assert at["target_rate"] == result["relay"]["half"]["target_rate"] and at["errors"] == 0
    assert "relay's half rate" in done.stdout
    assert result["idle"]["connections"] == 20
