"""Scale benchmark: time and peak memory of a local run as the frame count grows.

    python -m bench.run --scale                    # 360, 1200 and 3600 frames
    python -m bench.run --scale --scale-frames 360 1200

Each frame count runs ``volcano-gif local`` once, in its own copy of the
project, and reports the wall time, the time per frame, and the peak resident
memory of every kind of process in it: a render worker, the main Python
process (frame check, archive, read-backs, run record), and each ffmpeg
(MP4, the GIF's palette pass, the GIF). Each peak is read with ``os.wait4`` or
``getrusage`` when its process ends (see ``volcano_gif.commands``), so it is
that process's own peak, not a sample. The last column is the largest process
of the whole run, read with ``os.wait4`` on the run's own process, which
includes every process it waited for (the MP4 read-back's ffmpeg among them).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.markdown import number_table
from tools.workspace import copy_project, run_env
from volcano_gif.commands import run_measured

DEFAULT_FRAME_COUNTS = (360, 1200, 3600)
#: The processes whose peaks the table shows, in this order.
PROCESSES = ("render worker", "python", "ffmpeg mp4", "ffmpeg palette", "ffmpeg gif")

_RUN_LOCAL = (
    "import json, sys; from pathlib import Path; "
    "from volcano_gif.local.runner import run_local; "
    "from volcano_gif.paths import ProjectPaths; "
    "r = run_local(ProjectPaths(Path('.').resolve()), int(sys.argv[1])); "
    "print(json.dumps({'times': dict(r.times), 'peaks': r.times.peaks_mib}))"
)


@dataclass(frozen=True)
class ScaleRun:
    frames: int
    seconds: float
    stages: dict[str, float]
    peaks_mib: dict[str, float]
    largest_mib: float

    @property
    def ms_per_frame(self) -> float:
        return 1000 * self.seconds / self.frames

    def cells(self) -> list[str]:
        """Its row of the table: frames, seconds, ms per frame, each process's peak, the largest."""
        peaks = [self.peaks_mib.get(name, float("nan")) for name in PROCESSES]
        timings = (f"{figure:.1f}" for figure in (self.seconds, self.ms_per_frame))
        return [str(self.frames), *timings, *(f"{mib:.0f}" for mib in [*peaks, self.largest_mib])]


def run_at(frames: int, parent: Path) -> ScaleRun:
    """One local run of ``frames`` frames in a fresh copy of the project."""
    folder = copy_project(Path(tempfile.mkdtemp(prefix=f"scale-{frames}-", dir=parent)))
    began = time.perf_counter()
    finished = run_measured([sys.executable, "-c", _RUN_LOCAL, str(frames)], folder, run_env())
    seconds = time.perf_counter() - began
    result = json.loads(finished.stdout.strip().splitlines()[-1])
    shutil.rmtree(folder)
    return ScaleRun(frames, seconds, result["times"], result["peaks"], finished.peak_mib)


def table(runs: Sequence[ScaleRun]) -> str:
    header = [
        "frames",
        "wall (s)",
        "ms per frame",
        *(f"{name} (MiB)" for name in PROCESSES),
        "largest process (MiB)",
    ]
    return number_table(header, [found.cells() for found in runs])


def main(frame_counts: Sequence[int], output: Path) -> int:
    runs = []
    with tempfile.TemporaryDirectory(prefix="volcano-scale-") as scratch:
        for frames in frame_counts:
            found = run_at(frames, Path(scratch))
            print(
                f"scale: {frames} frames in {found.seconds:.1f} s, largest process "
                f"{found.largest_mib:.0f} MiB",
                file=sys.stderr,
            )
            runs.append(found)
    print("\nScale benchmark: one local run per frame count, default size (640x480, GIF 400 px).\n")
    print(table(runs))
    output.mkdir(parents=True, exist_ok=True)
    target = output / f"scale-{time.strftime('%Y%m%dT%H%M%S')}.json"
    target.write_text(json.dumps([run.__dict__ for run in runs], indent=2) + "\n")
    print(f"\nresults: {target}", file=sys.stderr)
    return 0
