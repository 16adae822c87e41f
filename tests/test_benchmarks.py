"""The benchmark harness end to end in its tiny mode: every scenario and contender gets a positive
number (or a reason it does not apply), and the JSON, text and PNG reports are written.

No timing is asserted: speed targets live in the benchmark's own output.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from benchmarks.contenders import CONTENDERS, Unavailable, load
from benchmarks.runner import ALL_SCENARIOS

ROOT = Path(__file__).resolve().parent.parent


def _importable(name: str) -> bool:
    try:
        load(name)
    except Unavailable:
        return False
    return True


def test_tiny_run_covers_every_scenario_and_contender(
    test_database_url: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("NXDATA_DATABASE_URL", "DATABASE_URL")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--tiny",
            "--url",
            test_database_url,
            "--out",
            str(tmp_path),
        ],
        cwd=ROOT,
        env=env | {"PYTHONWARNINGS": "ignore"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    results_dir = tmp_path
    document = json.loads((results_dir / "latest.json").read_text())
    assert document["meta"]["mode"] == "tiny"
    assert document["contenders"] == list(CONTENDERS)

    # a contender whose packages are not installed here (e.g. greenlet for SQLAlchemy's
    # asyncio extension) may say so; every other one must have run everything that applies
    missing = {name for name in CONTENDERS if not _importable(name)}
    assert "psycopg" not in missing and "nxdata" not in missing and "nxdata-async" not in missing
    for scenario in ALL_SCENARIOS:
        entry = document["scenarios"][scenario.key]
        assert set(entry["results"]) == set(CONTENDERS), scenario.key
        for name, cell in entry["results"].items():
            where = f"{scenario.key} / {name}: {cell}"
            if "na" in cell:
                assert cell["na_kind"] == "inapplicable" or name in missing, where
                assert cell["na"], where
                continue
            assert cell["median"] > 0, where
            assert all(sample > 0 for sample in cell["samples"]), where
            assert cell["ratio"] is not None and cell["ratio"] > 0, where
    # the baseline runs everything
    for scenario in ALL_SCENARIOS:
        assert "median" in document["scenarios"][scenario.key]["results"]["psycopg"]

    assert {t["scenario"] for t in document["targets"]} >= {"pk_lookup", "large_fetch"}
    png = (results_dir / "latest.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    text = (results_dir / "latest.txt").read_text()
    assert "Targets (issue 7)" in text and "ratio" in text
    assert "(indicative: tiny mode runs smaller sizes" in text  # targets are set for full runs
