"""``bench/load.py`` runs end to end (50 wallets, 5 s, SQLite) and prints its table and a JSON line with every
figure; nothing is lost, duplicated or refused. No timing is asserted (benchmarks report, tests do not time)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "load.py"


def test_load_bench_short_run_has_every_figure_and_no_error(tmp_path: Path) -> None:
    plot = tmp_path / "load.svg"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--duration", "5", "--wallets", "50", "--churners", "2", "--svg", str(plot)],
        capture_output=True, text=True, timeout=60, check=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert "delivery latency p50 / p99" in done.stdout
    assert result["connected"] == result["wallets"] == 50 and result["database"] == "sqlite"
    assert result["relay_mailbox"] == "sqlite"  # the relay keeps its mailbox in a file, as `wcnotify up` does
    assert result["sends"] >= 4 and result["expected"] == 50 * result["sends"]
    assert result["delivered"] == result["expected"] and result["throughput_per_s"] > 0
    assert result["error_count"] == 0 and result["error_rate"] == 0, result["errors"]
    assert set(result["errors"]) == {"send_refused", "accounts_failed", "undelivered", "duplicates",
                                     "undecryptable", "connections_lost", "churn"}
    assert result["failures"] == []
    assert 0 < result["latency_ms"]["p50"] <= result["latency_ms"]["p99"]
    assert {"register", "subscribe", "update", "delete", "unregister"} <= set(result["churn"])
    assert all(c["count"] > 0 and c["errors"] == 0 for c in result["churn"].values())
    assert set(result["memory"]) == {"relay", "keys", "notify"}
    assert all(m["first_mb"] > 0 for m in result["memory"].values())
    assert result["queue_depth"]["end"] == 0 and len(result["samples"]) >= 3
    assert plot.read_text().startswith("<svg") and "<polyline" in plot.read_text()
