"""Where a run reads and writes: every folder and file below one project root."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePath

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


class _Below:
    """A path below a project's root, from layout.py: ``images = _Below(IMAGES_DIR)``."""

    def __init__(self, *parts: str | PurePath) -> None:
        self.parts = parts

    def __get__(self, paths: ProjectPaths, owner: object = None) -> Path:
        return paths.root.joinpath(*self.parts)


@dataclass(frozen=True)
class ProjectPaths:
    """Where a run reads and writes, all below one project root."""

    root: Path

    data_file = _Below(DATA_FILE)
    images = _Below(IMAGES_DIR)
    gifs = _Below(GIFS_DIR)
    archives = _Below(ARCHIVES_DIR)
    slurm_logs = _Below(SLURM_LOG_DIR)
    mpl_cache = _Below(MPL_CACHE_DIR)
    scene_cache = _Below(SCENE_CACHE_DIR)
    output = _Below(OUTPUT_DIR)
    run_record = _Below(RUN_RECORD)
    folder_lock = _Below(FOLDER_LOCK)
    record_lock = _Below(RECORD_LOCK)
    timing = _Below(TIMING_DIR)
    report = _Below(REPORT_DIR)
    reproductions = _Below(REPRODUCE_DIR)
    mp4 = _Below(GIFS_DIR, MP4_NAME)
    gif = _Below(GIFS_DIR, GIF_NAME)

    def frame(self, frame: int) -> Path:
        return self.images / frame_name(frame)

    def relative(self, path: Path) -> str:
        """``path`` relative to the project root when it is inside it."""
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)
