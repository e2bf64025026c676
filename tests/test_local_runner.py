"""The local runner end to end: the same two stages on this machine's cores."""

from __future__ import annotations

import os
import shutil
import sys
import tarfile
from pathlib import Path

import pytest

from tests.helpers import project_env, run
from tests.media import gif_facts, mp4_frame_count
from volcano_gif.assembler import FramesNotReadyError
from volcano_gif.layout import ProjectPaths
from volcano_gif.local_runner import run_local
from volcano_gif.render import FrameRenderer


def _check_outputs(root: Path, frame_count: int) -> None:
    assert mp4_frame_count(root / "output/gifs/volcano.mp4") == frame_count
    assert gif_facts(root / "output/gifs/volcano.gif")[0] == frame_count
    (archive,) = (root / "output/archives").iterdir()
    with tarfile.open(archive) as opened:
        assert len(opened.getnames()) == frame_count
    assert [p.name for p in (root / "images").iterdir()] == []


def test_run_local_from_python(project: Path) -> None:
    result = run_local(ProjectPaths(project), 12, workers=2)
    assert result.frames_deleted == 12
    _check_outputs(project, 12)


def test_submit_gif_job_local(project: Path) -> None:
    result = run(["bash", "submit-gif-job", "--local", "--frames", "12"], cwd=project)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[:2] == [
        str(project / "output/gifs/volcano.mp4"),
        str(project / "output/gifs/volcano.gif"),
    ]
    _check_outputs(project, 12)


def test_submit_gif_job_without_sbatch_runs_locally(project: Path, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin-without-sbatch"
    bin_dir.mkdir()
    for tool in ("dirname", "mkdir"):
        found = shutil.which(tool)
        assert found is not None
        os.symlink(found, bin_dir / tool)
    env = project_env({"PATH": str(bin_dir)})
    result = run([shutil.which("bash") or "bash", "submit-gif-job", "--frames", "8"],
                 cwd=project, env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "sbatch not found; running on this machine" in result.stderr
    _check_outputs(project, 8)


def test_failed_renders_still_reach_the_assembler(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = FrameRenderer.render

    def fails_on_frame_4(self: FrameRenderer, frame: int, images: Path) -> Path:
        if frame == 4:
            raise RuntimeError("simulated crash")
        return original(self, frame, images)

    monkeypatch.setattr(FrameRenderer, "render", fails_on_frame_4)
    with pytest.raises(FramesNotReadyError, match=r"1 of 8 frames are missing or broken \(4\)"):
        run_local(ProjectPaths(project), 8, workers=2)
    assert len(list((project / "images").iterdir())) == 7


def test_volcano_gif_console_script_runs_locally(project: Path) -> None:
    script = Path(sys.executable).parent / "volcano-gif"
    assert script.exists(), "pip install -e . installs the volcano-gif console script"
    result = run([script, "local", "--frame-count", "4", "-q"], cwd=project)
    assert result.returncode == 0, result.stderr
    _check_outputs(project, 4)
