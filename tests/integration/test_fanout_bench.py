"""``wcnotify bench fanout`` runs end to end (20 wallets, SQLite) and prints its table and a JSON line; every
wallet decrypts and verifies the broadcast. No timing is asserted (benchmarks report, tests do not time)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

WCNOTIFY = shutil.which("wcnotify", path=str(Path(sys.executable).parent)) or "wcnotify"


def test_bench_fanout_cli_prints_table_and_json() -> None:
    done = subprocess.run(
        [WCNOTIFY, "bench", "fanout", "--wallets", "20", "--databases", "sqlite", "--rounds", "2", "--timeout", "60"],
        capture_output=True, text=True, timeout=240, check=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert "ceiling = build_message" in done.stdout
    run = result["sqlite"]
    assert "postgres" not in result
    assert run["complete"] and run["wallets"] == 20 and len(run["rounds"]) == 2
    assert run["decrypted"] == run["verified"] == 40  # each wallet decrypted and verified both broadcasts
    assert (run["duplicates"], run["errors"], run["lost"], run["failures"]) == (0, 0, 0, [])
    for r in run["rounds"]:
        assert r["decrypted"] == 20 and r["status"]["published"] == 20
        assert 0 < r["first_s"] <= r["p50_s"] <= r["last_s"] and r["rate"] > 0
        assert set(r["cpu"]) >= {"notify", "relay", "wallets", "other"}
    assert run["ceiling"] > 0 and run["rate"] == max(r["rate"] for r in run["rounds"])
    assert run["ratio"] == round(run["rate"] / run["ceiling"], 2)
