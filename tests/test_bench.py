"""The benchmark's quick mode runs end to end (its numbers are not checked here)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.helpers import REPO, run
from tools.local_slurm import Cluster


def test_quick_benchmark_runs_both_settings_and_writes_json(slurm: Cluster, tmp_path: Path) -> None:
    result = run(
        [
            sys.executable,
            "-m",
            "bench.run",
            "--quick",
            "--frames",
            "4",
            "--slurm-conf",
            slurm.conf,
            "--output",
            tmp_path,
        ],
        cwd=REPO,
        timeout=600,
    )
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


def test_a_class_of_two_learners_makes_two_gifs_and_sdiag_counts_their_submissions(
    slurm: Cluster, session_folder: Path
) -> None:
    from bench.classroom import class_env, class_learners, run_class, table

    learners = class_learners(2)  # two Unix users of their own, as in a room
    result, seats = run_class(learners, 4, 2, class_env(slurm.conf), session_folder / "class")
    assert [seat.error for seat in seats] == ["", ""]
    assert (result.gifs, result.jobs) == (2, 2 * (2 + 1))
    # sdiag was reset first: each learner's submit-gif-job made its two sbatch calls.
    assert result.rpcs["REQUEST_SUBMIT_BATCH_JOB"] == 4
    assert result.rpcs["REQUEST_COMPLETE_BATCH_SCRIPT"] == 2 * 3  # 2 tasks and the assembly
    rows = table([result]).splitlines()
    assert rows[0].startswith("| learners | frames/task | jobs queued | time to last GIF (s) |")
    assert rows[2].startswith("| 2 | 2 | 6 | ")
    owners = {(seat.folder / "output/run.json").stat().st_uid for seat in seats}
    assert owners == {learner.uid for learner in learners}
