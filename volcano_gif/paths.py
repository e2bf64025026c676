"""Where a run reads and writes: every folder and file below one project root."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from volcano_gif.errors import UsageError
from volcano_gif.layout import (
    ARCHIVES_DIR,
    DATA_FILE,
    FOLDER_LOCK,
    GIF_NAME,
    GIFS_DIR,
    IMAGES_DIR,
    MP4_NAME,
    MPL_CACHE_DIR,
    OUTPUT_DIR,
    RECORD_LOCK,
    REPORT_DIR,
    REPRODUCE_DIR,
    RUN_RECORD,
    SCENE_CACHE_DIR,
    SLURM_LOG_DIR,
    TIMING_DIR,
    frame_name,
)


@dataclass(frozen=True)
class ProjectPaths:
    """Where a run reads and writes, all below one project root."""

    root: Path

    @property
    def data_file(self) -> Path:
        return self.root / DATA_FILE

    @property
    def images(self) -> Path:
        return self.root / IMAGES_DIR

    @property
    def gifs(self) -> Path:
        return self.root / GIFS_DIR

    @property
    def archives(self) -> Path:
        return self.root / ARCHIVES_DIR

    @property
    def slurm_logs(self) -> Path:
        return self.root / SLURM_LOG_DIR

    @property
    def mpl_cache(self) -> Path:
        return self.root / MPL_CACHE_DIR

    @property
    def scene_cache(self) -> Path:
        return self.root / SCENE_CACHE_DIR

    @property
    def output(self) -> Path:
        return self.root / OUTPUT_DIR

    @property
    def run_record(self) -> Path:
        return self.root / RUN_RECORD

    @property
    def folder_lock(self) -> Path:
        return self.root / FOLDER_LOCK

    @property
    def record_lock(self) -> Path:
        return self.root / RECORD_LOCK

    @property
    def timing(self) -> Path:
        return self.root / TIMING_DIR

    @property
    def report(self) -> Path:
        return self.root / REPORT_DIR

    @property
    def reproductions(self) -> Path:
        return self.root / REPRODUCE_DIR

    @property
    def mp4(self) -> Path:
        return self.gifs / MP4_NAME

    @property
    def gif(self) -> Path:
        return self.gifs / GIF_NAME

    def frame(self, frame: int) -> Path:
        return self.images / frame_name(frame)

    def relative(self, path: Path) -> str:
        """``path`` relative to the project root when it is inside it."""
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)


def check_project_root(root: Path) -> None:
    """Refuse a project folder whose path holds a control character, a line break say:
    the frame list ffmpeg reads and the logs sbatch writes take the path as text."""
    control = next((char for char in str(root) if ord(char) < 32 or ord(char) == 127), None)
    if control is not None:
        raise UsageError(
            f"the project folder {str(root)!r} holds a control character ({control!r}) in its "
            "path, which the assembly cannot pass to ffmpeg: rename or move it, then try again"
        )
