"""A reproduction on a real Slurm: the frames as an array, compared by a dependent job.

As every end-to-end test, as the learner, on the private localhost cluster of
the ``slurm`` fixture; the run to reproduce is made there first.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.slurm_helpers import submit, task_states, volcano_gif
from tools.local_slurm import Cluster, job_records, wait_for_jobs
from volcano_gif.layout import COMPARE_MEMORY
from volcano_gif.paths import ProjectPaths
from volcano_gif.run.lifecycle import require_record


def test_a_reproduction_renders_as_an_array_and_reports_identical_frames(
    slurm: Cluster, learner_project: Path
) -> None:
    project = learner_project
    array_id, gif_id = submit(
        slurm, project, "--frames", "8", "--size", "96x72", "--frames-per-task", "2"
    )
    wait_for_jobs(slurm, [array_id, gif_id], timeout=240)
    original = require_record(ProjectPaths(project))
    assert original.state == "assembled"
    assert original.command == [
        "submit-gif-job",
        "--frames",
        "8",
        "--size",
        "96x72",
        "--frames-per-task",
        "2",
    ]
    assert original.data_sha256 is not None
    archive = project / original.outputs["archive"].path
    project_logs = sorted((project / "output/slurm_files").iterdir())

    result = volcano_gif(slurm, project, "reproduce", str(archive), "--watch")
    assert result.returncode == 0, result.stdout + result.stderr
    frames_job = re.search(r"^frames job: (\d+) \(array 1-4\)$", result.stdout, re.MULTILINE)
    compare_job = re.search(r"^compare job: (\d+) \(afterany:(\d+)\)$", result.stdout, re.MULTILINE)
    assert frames_job, result.stdout
    assert compare_job, result.stdout
    frames_id, compare_id = frames_job.group(1), compare_job.group(1)
    assert compare_job.group(2) == frames_id
    # An array of the run's own frames per task (2), then the comparison after it.
    assert task_states(slurm, frames_id) == dict.fromkeys(range(1, 5), "COMPLETED")
    (comparison,) = job_records(slurm, compare_id)
    assert (comparison["JobState"], comparison["ExitCode"]) == ("COMPLETED", "0:0")
    assert comparison["MinMemoryNode"] == COMPARE_MEMORY
    assert f"compare job {compare_id}: " in result.stderr  # the watch's lines
    outcome = (
        f"identical: all 8 frames have the SHA-256 in run {original.run_id}'s record and its "
        "archive"
    )
    assert result.stdout.splitlines()[-1] == outcome

    scratch = project / "output/reproduce" / original.run_id
    record = require_record(ProjectPaths(scratch))
    assert (record.kind, record.mode, record.state) == ("reproduce", "slurm", "compared")
    assert record.reproduces is not None
    assert record.reproduces.identical is True
    assert record.assembly_job_id == compare_id
    assert record.frames_sha256 == original.frames_sha256
    # Its logs are its own; the project's log folder did not change.
    logs = sorted(path.name for path in (scratch / "output/slurm_files").iterdir())
    assert logs == sorted(
        [
            *(
                f"generate_frames-{frames_id}_{task}.{ext}"
                for task in range(1, 5)
                for ext in ("out", "err")
            ),
            f"compare_frames-{compare_id}.out",
            f"compare_frames-{compare_id}.err",
        ]
    )
    assert outcome in (scratch / f"output/slurm_files/compare_frames-{compare_id}.out").read_text()
    assert sorted((project / "output/slurm_files").iterdir()) == project_logs
    assert len(list((scratch / "output/timing").iterdir())) == 4  # one per task
