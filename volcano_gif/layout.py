"""The shared facts of a run: frame count and names, sizes, folders, scripts,
what each job asks for, log patterns.

Everything that more than one part of the pipeline needs to agree on is defined
here once, as a value: the arithmetic on them is in :mod:`volcano_gif.numbering`,
the folders of one project in :mod:`volcano_gif.paths`. The shell scripts
agree with these values; ``tests/test_scripts.py`` checks that they do.
"""

from __future__ import annotations

import re
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
    Path("data/volcano.csv"),
    Path("images"),
    Path("output"),
    Path(".cache"),
)
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
#: Where ``volcano-gif reproduce`` renders a past run again: one folder per
#: original run (``output/reproduce/<run id>/``), a project root of its own.
REPRODUCE_DIR = OUTPUT_DIR / "reproduce"
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
#: A reproduction's dependent job: compares the frames rendered again with the run's.
COMPARE_SCRIPT = "compare_frames.slurm"
SUBMIT_SCRIPT = "submit-gif-job"
#: The one command that finishes an interrupted run.
RESUME_COMMAND = f"bash {SUBMIT_SCRIPT} --resume"

#: The run record's states of a run whose jobs or processes may be at work
#: (volcano_gif/run/record.py's RunState): the render task reads them from the file.
UNDER_WAY_STATES = frozenset({"submitting", "submitted", "rendering", "assembling"})
#: Each job of a run says whose it is in its comment (``sbatch --comment``):
#: ``volcano-gif:run:<run id>``, or ``volcano-gif:reproduce:<original run id>``.
#: A folder's live jobs are found from the queue, even without output/run.json.
JOB_COMMENT_PREFIX = "volcano-gif:"


def job_comment(kind: str, run_id: str) -> str:
    """The ``--comment`` of a run's jobs: ``volcano-gif:run:20261121T173505-4821``."""
    return f"{JOB_COMMENT_PREFIX}{kind}:{run_id}"


#: Seconds the assembly keeps looking for frames missing at its first look, for a
#: shared filesystem that shows files written on other nodes late (NFS caches
#: directory listings and negative lookups for seconds; see assembly/latency.py).
#: Long enough for a cache revalidated by re-reading the folder, short enough that
#: a run whose frames are really missing fails soon; 0 turns it off.
LATENCY_WAIT = 15.0
LATENCY_WAIT_VARIABLE = "VOLCANO_LATENCY_WAIT"

#: Slurm's default MaxArraySize: array indices run 0..MaxArraySize-1.
DEFAULT_MAX_ARRAY_SIZE = 1001
#: The largest --frames-per-task and --max-running we accept.
MAX_TASK_OPTION = 9999

#: Memory each job asks for (``#SBATCH --mem``), from measurement with a margin
#: (``python -m bench.run --scale`` and the guide's "Memory" page). A render
#: task peaked at 67 MiB at 640x480 and 123 MiB at 3840x2160. The assembly's
#: processes, each at its own peak at once, come to under 300 MiB at 640x480
#: whatever the frame count (the GIF streams); 400 MiB at 1920x1080.
RENDER_TASK_MEMORY = "256M"
ASSEMBLY_MEMORY = "1G"
#: The comparison hashes every frame and decodes only those that differ, one at a
#: time, with their archived copies: it peaked at 43 MiB for 360 identical frames
#: at 640x480, and at 62 MiB with every one of them different.
COMPARE_MEMORY = "256M"
#: Time each job asks for (``#SBATCH --time``): a render task of one frame takes
#: about a second, the assembly of 360 frames under 10 s on the test machine.
RENDER_TASK_TIME = "00:05:00"
ASSEMBLY_TIME = "00:15:00"
#: A reproduction's comparison of 360 frames takes about a second, 6 s if every
#: frame differs (each is decoded with its archived copy).
COMPARE_TIME = "00:15:00"

#: Slurm log file patterns: one file per array task (%A job, %a task).
SLURM_ARRAY_LOG_OUT = f"{SLURM_LOG_DIR}/%x-%A_%a.out"
SLURM_ARRAY_LOG_ERR = f"{SLURM_LOG_DIR}/%x-%A_%a.err"
SLURM_JOB_LOG_OUT = f"{SLURM_LOG_DIR}/%x-%j.out"
SLURM_JOB_LOG_ERR = f"{SLURM_LOG_DIR}/%x-%j.err"


def frame_name(frame: int) -> str:
    """The file name of frame ``frame``, e.g. ``image0007.png``."""
    return FRAME_PATTERN % frame


def frame_number(name: str) -> int | None:
    """The frame number of a file name made by :func:`frame_name`, else None."""
    match = _FRAME_RE.match(name)
    return int(match.group(1)) if match else None
