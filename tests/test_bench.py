"""The benchmark's quick mode runs end to end (its numbers are not checked here)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO
from tests.helpers import run
from tools.local_slurm import Cluster

pytestmark = pytest.mark.slurm


def test_quick_benchmark_runs_both_settings_and_writes_json(slurm: Cluster, tmp_path: Path) -> None:
    result = run(
        [sys.executable, "-m", "bench.run", "--quick", "--frames", "4",
         "--slurm-conf", slurm.conf, "--output", tmp_path],
        cwd=REPO, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "QUICK MODE (4 frames, 1 repeat(s)): not the published figures" in result.stdout
    for row in (
        "| local | ours |",
        "| slurm | ours, 1 frame/task |",
        "| slurm | ours, 2 frames/task |",
    ):
        assert row in result.stdout
    (record_file,) = tmp_path.glob("bench-*.json")
    record = json.loads(record_file.read_text())
    assert record["mode"] == "quick"
    assert set(record["ratios"]) == {
        "local/ours",
        "slurm/ours, 1 frame/task",
        "slurm/ours, 2 frames/task",
    }
    assert all(ratio > 0 for ratio in record["ratios"].values())
    assert (
        "GIF from the same frames, PSNR against the frames scaled the same way: ours 400x300"
        in (result.stdout)
    )
    assert record["gif_quality"]["ours"]["psnr_db"] >= 45
