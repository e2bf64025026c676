"""The shared facts of a run: frame count, frame names, task blocks and folders.

Everything that more than one part of the pipeline needs to agree on is defined
here once. The shell scripts agree with these values; ``tests/test_scripts.py``
checks that they do.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

#: Frames in one full turn. Frame n is seen from azimuth 45 + n * 360 / count.
DEFAULT_FRAME_COUNT = 360
#: The largest frame count we accept (frame names have four digits).
MAX_FRAME_COUNT = 9999
#: Frames are numbered 1..count, as in the original recipe and the Slurm array.
FIRST_FRAME = 1
#: ``image0001.png`` ... ``image0360.png``: zero-padded so that names sort.
FRAME_PREFIX = "image"
FRAME_DIGITS = 4
FRAME_SUFFIX = ".png"
FRAME_PATTERN = f"{FRAME_PREFIX}%0{FRAME_DIGITS}d{FRAME_SUFFIX}"  # ffmpeg's form
_FRAME_RE = re.compile(rf"^{FRAME_PREFIX}(\d{{{FRAME_DIGITS}}}){re.escape(FRAME_SUFFIX)}$")

#: Frame size in pixels: the original's 640x480 (matplotlib's default figure).
DEFAULT_SIZE = (640, 480)
MIN_SIDE = 16
MAX_SIDE = 7680
#: Each frame PNG carries a text chunk with this keyword saying which frame of
#: which run it is, so that a frame of another run is never taken for this one.
FRAME_LABEL_KEY = "volcano-gif"
#: Frames per second of the MP4 and the GIF (GIF delays are whole hundredths
#: of a second, so 25 fps, 4/100 s, is exact).
FPS = 25

#: Folders and files, relative to the project root: the inputs, the frames,
#: what a run writes (all under output/) and the caches (under .cache/).
DATA_FILE, IMAGES_DIR, OUTPUT_DIR, CACHE_DIR = (
    Path("data/volcano.csv"), Path("images"), Path("output"), Path(".cache"))  # fmt: skip
GIFS_DIR = OUTPUT_DIR / "gifs"
ARCHIVES_DIR = OUTPUT_DIR / "archives"
SLURM_LOG_DIR = OUTPUT_DIR / "slurm_files"
#: The run record: parameters, job ids, state and checksums of the current run.
RUN_RECORD = OUTPUT_DIR / "run.json"
#: Held (fcntl.flock) by a local run for its whole length, and by a submission
#: while it plans: one run per folder. The OS drops it when its process ends;
#: and briefly by whoever rewrites the run record.
FOLDER_LOCK, RECORD_LOCK = OUTPUT_DIR / ".folder.lock", OUTPUT_DIR / ".run.json.lock"
#: One small timing file per render task (array task or local worker), and the
#: run report: tasks.csv, timeline.png, summary.txt.
TIMING_DIR, REPORT_DIR = OUTPUT_DIR / "timing", OUTPUT_DIR / "report"
#: matplotlib's font cache, and the 3D scene of a run (colours, projections),
#: worked out once: volcano_gif/task/scene.py.
MPL_CACHE_DIR, SCENE_CACHE_DIR = CACHE_DIR / "matplotlib", CACHE_DIR / "scenes"
MP4_NAME = "volcano.mp4"
#: GIF width in pixels by default (never wider than the frames); the height
#: keeps the frames' aspect ratio.
DEFAULT_GIF_WIDTH = 400
GIF_NAME = "volcano.gif"
ARCHIVE_PREFIX = "volcano-images-"
ARCHIVE_STAMP_FORMAT = "%Y%m%dT%H%M%S"  # no colons: GNU tar reads host:file
#: The copy of the run record that every archive carries.
ARCHIVE_RECORD_NAME = "run.json"

#: The scripts of the project folder.
RENDER_SCRIPT = "volcano.py"
ARRAY_SCRIPT = "generate_frames.slurm"
ASSEMBLY_SCRIPT = "create_gif.slurm"
SUBMIT_SCRIPT = "submit-gif-job"
#: The one command that finishes an interrupted run.
RESUME_COMMAND = f"bash {SUBMIT_SCRIPT} --resume"

#: Slurm's default MaxArraySize: array indices run 0..MaxArraySize-1.
DEFAULT_MAX_ARRAY_SIZE = 1001
#: The largest --frames-per-task and --max-running we accept.
MAX_TASK_OPTION = 9999

#: Memory each job asks for (``#SBATCH --mem``), from measurement with a margin
#: (``python -m bench.run --scale`` and the README's "Memory" section). A render
#: task peaked at 67 MiB at 640x480 and 123 MiB at 3840x2160. The assembly's
#: processes, each at its own peak at once, come to under 300 MiB at 640x480
#: whatever the frame count (the GIF streams); 400 MiB at 1920x1080.
RENDER_TASK_MEMORY = "256M"
ASSEMBLY_MEMORY = "1G"

#: Slurm log file patterns: one file per array task (%A job, %a task).
SLURM_ARRAY_LOG_OUT = f"{SLURM_LOG_DIR}/%x-%A_%a.out"
SLURM_ARRAY_LOG_ERR = f"{SLURM_LOG_DIR}/%x-%A_%a.err"
SLURM_JOB_LOG_OUT = f"{SLURM_LOG_DIR}/%x-%j.out"
SLURM_JOB_LOG_ERR = f"{SLURM_LOG_DIR}/%x-%j.err"


class UsageError(ValueError):
    """Bad input from the user: reported as one line, with a non-zero exit."""


def check_frame_count(frame_count: int) -> int:
    """Return ``frame_count`` if it is usable, else raise :class:`UsageError`."""
    if not 1 <= frame_count <= MAX_FRAME_COUNT:
        raise UsageError(f"frame count {frame_count} is out of range: use 1 to {MAX_FRAME_COUNT}")
    return frame_count


def check_frame(frame: int, frame_count: int) -> int:
    """Return ``frame`` if it is one of 1..frame_count, else raise :class:`UsageError`."""
    if not FIRST_FRAME <= frame <= frame_count:
        raise UsageError(
            f"frame {frame} is out of range: use {FIRST_FRAME} to {frame_count} "
            f"(the frame count is {frame_count})"
        )
    return frame


def parse_size(text: str) -> tuple[int, int]:
    """``"640x480"`` -> ``(640, 480)``, or :class:`UsageError`."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if match is None:
        raise UsageError(f"size {text!r} is not of the form WIDTHxHEIGHT, e.g. 640x480")
    width, height = int(match.group(1)), int(match.group(2))
    if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
        raise UsageError(
            f"size {width}x{height} is out of range: each side {MIN_SIDE} to {MAX_SIDE} pixels"
        )
    return width, height


def format_size(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def frame_label(frame: int, frame_count: int, size: tuple[int, int]) -> str:
    """What a frame's PNG says it is: ``"frame 7 of 360, 640x480"``."""
    return f"frame {frame} of {frame_count}, {format_size(size)}"


def gif_size(size: tuple[int, int], gif_width: int) -> tuple[int, int]:
    """The GIF's size: ``gif_width`` wide, the height rounded as ffmpeg's ``scale=W:-1``."""
    width, height = size
    return gif_width, (gif_width * height + width // 2) // width


def default_gif_width(size: tuple[int, int]) -> int:
    """400 pixels, or the frame width if the frames are narrower."""
    return min(DEFAULT_GIF_WIDTH, size[0])


def gif_width_for(size: tuple[int, int], gif_width: int | None) -> int:
    """The GIF width of a run: ``gif_width``, or the default; never wider than the frames.

    A GIF wider than its frames would only be upscaled: slow and blurred
    (10000 px from 64x48 frames took 46 s and 20 MB), so it is refused.
    """
    if gif_width is None:
        return default_gif_width(size)
    if gif_width > size[0]:
        raise UsageError(
            f"--gif-width {gif_width} is wider than the frames ({size[0]} px): a GIF is never "
            f"scaled up; use --gif-width {size[0]} or less, or a larger --size"
        )
    return gif_width


def frame_name(frame: int) -> str:
    """The file name of frame ``frame``, e.g. ``image0007.png``."""
    return FRAME_PATTERN % frame


def frame_number(name: str) -> int | None:
    """The frame number of a file name made by :func:`frame_name`, else None."""
    match = _FRAME_RE.match(name)
    return int(match.group(1)) if match else None


def expected_frames(frame_count: int) -> range:
    """Every frame of a run of ``frame_count`` frames."""
    return range(FIRST_FRAME, check_frame_count(frame_count) + FIRST_FRAME)


def azimuth(frame: int, frame_count: int) -> float:
    """Azimuth in degrees of frame ``frame``: 45 + frame * 360 / count.

    For 360 frames this is the original ``45 + n``; frame ``count`` is a full
    turn from frame 0, so frames 1..count close the loop with no repeat.
    """
    return 45.0 + frame * 360.0 / frame_count


ELEVATION = 30.0


def task_count(frame_count: int, frames_per_task: int) -> int:
    """How many array tasks render ``frame_count`` frames, ``frames_per_task`` each."""
    check_frame_count(frame_count)
    if frames_per_task < 1:
        raise UsageError(f"frames per task must be at least 1, not {frames_per_task}")
    return math.ceil(frame_count / frames_per_task)


def task_frames(task: int, frames_per_task: int, frame_count: int) -> range:
    """The contiguous block of frames that array task ``task`` (1-based) renders."""
    tasks = task_count(frame_count, frames_per_task)
    if not 1 <= task <= tasks:
        raise UsageError(
            f"array task {task} is out of range: {frame_count} frames at "
            f"{frames_per_task} per task make tasks 1 to {tasks}"
        )
    first = (task - 1) * frames_per_task + FIRST_FRAME
    return range(first, min(first + frames_per_task, frame_count + FIRST_FRAME))


def task_of_frame(frame: int, frames_per_task: int) -> int:
    """The array task (1-based) whose block holds ``frame``."""
    return (frame - FIRST_FRAME) // frames_per_task + 1


def split_evenly(frames: range, parts: int) -> list[range]:
    """Split ``frames`` into at most ``parts`` contiguous, near-equal blocks."""
    parts = max(1, min(parts, len(frames)))
    size, extra = divmod(len(frames), parts)
    blocks: list[range] = []
    start = frames.start
    for index in range(parts):
        stop = start + size + (1 if index < extra else 0)
        blocks.append(range(start, stop))
        start = stop
    return [block for block in blocks if len(block)]


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
