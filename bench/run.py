"""Side-by-side benchmark: the original recipe against ours, in one run.

    python -m bench.run            # full mode: 360 frames, 3 repeats (the published table)
    python -m bench.run --quick    # 24 frames, 1 repeat: a smoke test, not for publishing
    python -m bench.run --scale    # time and peak memory at 360, 1200, 3600 frames (bench/scale.py)
    python -m bench.run --class 10 30  # a class at once: RPCs by type (bench/classroom.py)

Settings, each timed from start to GIF, MP4 and archive on disk:

* local: the original renderer one process per frame under ``xargs -P <cores>``,
  then its two ffmpeg commands and tar; against ``volcano-gif local``;
* slurm (when the localhost cluster can run): the original scripts (site lines
  removed) against ``submit-gif-job`` with one frame per task, and with
  frames / cores frames per task (the README's advice for a machine this size).

Every run works in its own copy of the project under a temporary folder. The
pipelines of a setting run in turn, their order rotated from one repeat to the
next, each after the same idle pause (--settle), so that none always follows
another's long full load. The table goes to stdout: medians, the ratio of the
medians, and the median of the ratios within each repeat. The raw results go to
output/bench/*.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.quality import measure as measure_quality
from tools.workspace import REPO, copy_project, run_env
from volcano_gif.commands import run, run_measured

ORIGINAL = REPO / "bench" / "original"
ORIGINAL_IMPORTS = (
    "import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot; "
    "from mpl_toolkits.mplot3d import Axes3D; import pandas; import seaborn"
)
OUR_IMPORTS = "import volcano_gif.task.main, volcano_gif.task.render, volcano_gif.task.scene"
#: The least a render task can import: numpy, matplotlib, Agg's renderer and a collection.
FLOOR_IMPORTS = (
    "import numpy, matplotlib; from matplotlib.backends.backend_agg import RendererAgg; "
    "from matplotlib.collections import PolyCollection"
)


@dataclass
class Run:
    """One timed run of one pipeline."""

    seconds: float
    stages: dict[str, float] = field(default_factory=dict)


@dataclass
class Setting:
    """The runs of the original and of ours in one setting."""

    name: str
    original: list[Run] = field(default_factory=list)
    ours: dict[str, list[Run]] = field(default_factory=dict)


def median(runs: Sequence[Run]) -> float:
    return statistics.median(run.seconds for run in runs)


def median_stages(runs: Sequence[Run]) -> dict[str, float]:
    names = [name for name in runs[0].stages]
    return {name: statistics.median(run.stages.get(name, 0.0) for run in runs) for name in names}


# ---------------------------------------------------------------- workspaces
def our_workspace(parent: Path) -> Path:
    return copy_project(Path(tempfile.mkdtemp(prefix="ours-", dir=parent)))


def original_workspace(parent: Path) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="original-", dir=parent))
    for path in ORIGINAL.iterdir():
        if path.is_file():
            shutil.copy2(path, folder / path.name)
    shutil.copytree(REPO / "data", folder / "data")
    for sub in ("images", "output/archives", "output/slurm_files", "output/gifs"):
        (folder / sub).mkdir(parents=True)
    return folder


def check(args: Sequence[str | Path], cwd: Path, env: dict[str, str]) -> str:
    return run([str(a) for a in args], cwd=cwd, env=env)


def import_seconds(statement: str, repeats: int = 5) -> float:
    """Median seconds for a fresh Python process to run ``statement`` (imports)."""
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        check([sys.executable, "-c", statement], REPO, run_env())
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def render_task_against_floor(parent: Path, repeats: int = 9) -> dict[str, float]:
    """Median seconds of the import floor and of a whole one-frame task, ours and the
    original's (frame 9 each), timed in turn the same way, the order rotated each
    repeat. Our scene cache and font cache are warm, as submit-gif-job leaves them."""
    ours, original = our_workspace(parent), original_workspace(parent)
    env = run_env({"MPLCONFIGDIR": str(ours / ".cache/matplotlib")})
    check([sys.executable, "volcano.py", "-q", "1"], ours, env)  # caches: fonts, scene
    check([sys.executable, "volcano_original.py", "1"], original, env)
    commands = {
        "import floor": ([sys.executable, "-c", FLOOR_IMPORTS], ours),
        "ours: python volcano.py 9": ([sys.executable, "volcano.py", "-q", "--force", "9"], ours),
        "original: python volcano.py 9": ([sys.executable, "volcano_original.py", "9"], original),
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    names = list(commands)
    for repeat in range(repeats):
        shift = repeat % len(names)
        for name in [*names[shift:], *names[:shift]]:
            args, folder = commands[name]
            began = time.perf_counter()
            check(args, folder, env)
            times[name].append(time.perf_counter() - began)
    shutil.rmtree(ours)
    shutil.rmtree(original)
    return {name: statistics.median(found) for name, found in times.items()}


def floor_table(task_seconds: dict[str, float]) -> str:
    floor = task_seconds["import floor"]
    lines = ["| command | median (s) | multiple of the import floor |", "|---|---:|---:|"]
    lines += [
        f"| {name} | {seconds:.3f} | {seconds / floor:.2f}x |"
        for name, seconds in task_seconds.items()
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------- local
def original_assembly(folder: Path, env: dict[str, str]) -> dict[str, float]:
    """Run the original assembly script; return its stage times from its own timer."""
    stderr = subprocess.run(
        ["bash", "assemble_original.sh"],
        cwd=folder,
        env={**env, "BENCH_TIMES": "1"},
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    return {
        name: float(value) for name, value in re.findall(r"^TIME (\w+) ([\d.]+)$", stderr, re.M)
    }


def run_original_local(parent: Path, frames: int, cores: int, startup: float) -> Run:
    folder = original_workspace(parent)
    env = run_env()
    began = time.perf_counter()
    subprocess.run(
        ["xargs", "-P", str(cores), "-n", "1", sys.executable, "volcano_original.py"],
        input="\n".join(str(n) for n in range(1, frames + 1)),
        text=True,
        cwd=folder,
        env=env,
        check=True,
    )
    rendered = time.perf_counter() - began
    stages = original_assembly(folder, env)
    total = time.perf_counter() - began
    start_share = min(rendered, startup * frames / cores)
    shutil.rmtree(folder)
    return Run(total, {"start-up": start_share, "render": rendered - start_share, **stages})


def run_ours_local(parent: Path, frames: int, startup: float) -> Run:
    folder = our_workspace(parent)
    code = (
        "import json, sys; from pathlib import Path; "
        "from volcano_gif.local.runner import run_local; "
        "from volcano_gif.paths import ProjectPaths; "
        f"r = run_local(ProjectPaths(Path('.').resolve()), {frames}); "
        "print(json.dumps(dict(r.times)))"
    )
    began = time.perf_counter()
    output = check([sys.executable, "-c", code], folder, run_env())
    total = time.perf_counter() - began
    times = json.loads(output.strip().splitlines()[-1])
    shutil.rmtree(folder)
    stages = {
        "start-up": startup,
        "render": times["render"],
        "encode": times["encode"],
        "archive": times["archive"],
        "assembly": times["check"] + times["verify"] + times["clean"],
    }
    return Run(total, stages)


# --------------------------------------------------------------------- slurm
def run_slurm(
    folder: Path, submit: Callable[[], tuple[str, str]], slurm_env: dict[str, str]
) -> Run:
    """Submit, wait for both jobs, and split the wall time by what scontrol says."""
    from tools.local_slurm import Cluster, job_records, wait_for_jobs

    cluster = Cluster(Path(slurm_env["SLURM_CONF"]).parent)
    began = time.perf_counter()
    array_id, gif_id = submit()
    wait_for_jobs(cluster, [array_id, gif_id], timeout=3600)
    total = time.perf_counter() - began
    tasks = job_records(cluster, array_id)
    (assembly,) = job_records(cluster, gif_id)
    if assembly.get("ExitCode") != "0:0":
        raise RuntimeError(f"assembly job {gif_id} failed in {folder}: {assembly}")
    first = min(datetime.fromisoformat(t["StartTime"]) for t in tasks)
    last = max(datetime.fromisoformat(t["EndTime"]) for t in tasks)
    assembly_seconds = (
        datetime.fromisoformat(assembly["EndTime"]) - datetime.fromisoformat(assembly["StartTime"])
    ).total_seconds()
    shutil.rmtree(folder)
    return Run(
        total,
        {
            "array": (last - first).total_seconds(),
            "assembly": assembly_seconds,
            "tasks": float(len(tasks)),
        },
    )


def submit_original(folder: Path, env: dict[str, str], frames: int) -> tuple[str, str]:
    array_id = (
        check(["sbatch", "--parsable", f"--array=1-{frames}", "generate_frames.slurm"], folder, env)
        .strip()
        .split(";")[0]
    )
    gif_id = (
        check(
            ["sbatch", "--parsable", f"--dependency=afterany:{array_id}", "create_gif.slurm"],
            folder,
            env,
        )
        .strip()
        .split(";")[0]
    )
    return array_id, gif_id


def submit_ours(folder: Path, env: dict[str, str], frames: int, per_task: int) -> tuple[str, str]:
    output = check(
        ["bash", "submit-gif-job", "--frames", str(frames), "--frames-per-task", str(per_task)],
        folder,
        env,
    )
    ids = re.findall(r"job: (\d+)", output)
    return ids[0], ids[1]


# -------------------------------------------------------------- peak memory
def render_task_peak_mib(parent: Path) -> float:
    """Peak resident memory of one render task (python volcano.py 1), in MiB.

    Its own high-water mark (run_measured): os.wait4's ru_maxrss would report at
    least this benchmark process's own peak, which the child inherits at fork.
    """
    folder = our_workspace(parent)
    peak = run_measured([sys.executable, "volcano.py", "1", "-q"], folder, run_env()).peak_mib
    shutil.rmtree(folder)
    return peak


# -------------------------------------------------------------------- report
def run_setting(
    name: str, jobs: Sequence[tuple[str, Callable[[], Run]]], repeats: int, settle: float
) -> Setting:
    """Run every pipeline ``repeats`` times, rotating their order each repeat.

    The machine idles ``settle`` seconds before every timed run, so that no
    pipeline always starts right after another's long full load.
    """
    runs: dict[str, list[Run]] = {label: [] for label, _ in jobs}
    for repeat in range(repeats):
        shift = repeat % len(jobs)
        for label, job in [*jobs[shift:], *jobs[:shift]]:
            time.sleep(settle)
            runs[label].append(job())
        print(
            f"{name} run {repeat + 1}/{repeats}: "
            + ", ".join(f"{label} {found[-1].seconds:.1f} s" for label, found in runs.items()),
            file=sys.stderr,
        )
    original = runs.pop("original")
    return Setting(name, original, runs)


def paired_ratio(original: Sequence[Run], ours: Sequence[Run]) -> float:
    """Median over repeats of original/ours within the same repeat."""
    return statistics.median(a.seconds / b.seconds for a, b in zip(original, ours, strict=True))


def table(settings: Sequence[Setting]) -> str:
    lines = [
        "| setting | pipeline | median wall (s) | original / ours (medians) "
        "| original / ours (paired, median) | stage medians (s) |",
        "|---|---|---:|---:|---:|---|",
    ]
    for setting in settings:
        base = median(setting.original)
        stages = ", ".join(f"{k} {v:.1f}" for k, v in median_stages(setting.original).items())
        lines.append(f"| {setting.name} | original | {base:.1f} | 1.0x | 1.0x | {stages} |")
        for label, runs in setting.ours.items():
            ours = median(runs)
            stages = ", ".join(f"{k} {v:.1f}" for k, v in median_stages(runs).items())
            paired = paired_ratio(setting.original, runs)
            lines.append(
                f"| {setting.name} | {label} | {ours:.1f} | {base / ours:.1f}x "
                f"| {paired:.1f}x | {stages} |"
            )
    return "\n".join(lines)


def quality_line(quality: dict[str, Any]) -> str:
    ours, original = quality["ours"], quality["original"]
    return (
        f"GIF from the same frames, PSNR against the frames scaled the same way: "
        f"ours {ours['size'][0]}x{ours['size'][1]} {ours['psnr_db']:.1f} dB, "
        f"original {original['size'][0]}x{original['size'][1]} {original['psnr_db']:.1f} dB"
    )


def slurm_ready(slurm_conf: str | None) -> tuple[dict[str, str] | None, Any]:
    """An environment for the localhost cluster, starting one if needed."""
    from tools import local_slurm

    if slurm_conf:
        return run_env({"SLURM_CONF": slurm_conf}), None
    if local_slurm.missing_programs() or os.geteuid() != 0:
        return None, None
    # The fast profile: the benchmark measures the pipeline, not a site's scheduler timing.
    cluster = local_slurm.Cluster(Path("/tmp/volcano-slurm-bench"), nodes=1, profile="fast")
    local_slurm.start(cluster)
    return run_env({"SLURM_CONF": str(cluster.conf)}), cluster


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--quick", action="store_true", help="24 frames and 1 repeat: for CI, not for publishing"
    )
    parser.add_argument("--frames", type=int, help="frames per run (default 360, quick 24)")
    parser.add_argument("--repeats", type=int, help="runs per pipeline (default 3, quick 1)")
    parser.add_argument(
        "--settle", type=float, help="idle seconds before each run (default 15, quick 0)"
    )
    parser.add_argument("--no-slurm", action="store_true", help="skip the Slurm setting")
    parser.add_argument("--slurm-conf", help="use this running cluster instead of starting one")
    parser.add_argument(
        "--output",
        type=Path,
        default=REPO / "output" / "bench",
        help="folder for the JSON results (default %(default)s)",
    )
    parser.add_argument(
        "--scale",
        action="store_true",
        help="the scale benchmark instead: time and peak memory of local runs "
        "as the frame count grows (see bench/scale.py)",
    )
    parser.add_argument(
        "--scale-frames",
        type=int,
        nargs="+",
        metavar="N",
        help="frame counts of --scale (default 360 1200 3600)",
    )
    parser.add_argument(
        "--class",
        dest="class_sizes",
        type=int,
        nargs="*",
        metavar="N",
        help="the class benchmark instead: N learners submitting and watching "
        "at once on one controller, RPCs from sdiag (default 10 30; see "
        "bench/classroom.py)",
    )
    parser.add_argument(
        "--class-frames", type=int, metavar="F", help="frames per learner in --class (default 72)"
    )
    args = parser.parse_args(argv)
    if args.class_sizes is not None:
        from bench import classroom

        sizes = args.class_sizes or classroom.DEFAULT_CLASS_SIZES
        return classroom.main(sizes, args.class_frames or classroom.DEFAULT_FRAMES, args.output)
    if args.scale or args.scale_frames:
        from bench import scale

        return scale.main(args.scale_frames or scale.DEFAULT_FRAME_COUNTS, args.output)
    frames = args.frames or (24 if args.quick else 360)
    repeats = args.repeats or (1 if args.quick else 3)
    settle = args.settle if args.settle is not None else (0.0 if args.quick else 15.0)
    cores = len(os.sched_getaffinity(0))
    per_task = max(1, -(-frames // cores))
    mode = (
        f"QUICK MODE ({frames} frames, {repeats} repeat(s)): not the published figures"
        if (args.quick)
        else f"full mode: {frames} frames, {repeats} repeats, order rotated, "
        f"{settle:.0f} s idle before each run"
    )
    print(
        f"# benchmark, {mode}; {cores} cores, Python {platform.python_version()}", file=sys.stderr
    )

    startup_original = import_seconds(ORIGINAL_IMPORTS)
    startup_ours = import_seconds(OUR_IMPORTS)
    settings: list[Setting] = []
    cluster = None
    with tempfile.TemporaryDirectory(prefix="volcano-bench-") as scratch:
        parent = Path(scratch)
        local_jobs: list[tuple[str, Callable[[], Run]]] = [
            ("original", lambda: run_original_local(parent, frames, cores, startup_original)),
            ("ours", lambda: run_ours_local(parent, frames, startup_ours)),
        ]
        settings.append(run_setting("local", local_jobs, repeats, settle))
        slurm_env = None
        if not args.no_slurm:
            slurm_env, cluster = slurm_ready(args.slurm_conf)
            if slurm_env is None:
                print(
                    "# slurm setting skipped: Slurm is not installed here (or not root)",
                    file=sys.stderr,
                )
        if slurm_env is not None:
            env = slurm_env

            def slurm_original() -> Run:
                folder = original_workspace(parent)
                return run_slurm(folder, lambda: submit_original(folder, env, frames), env)

            def slurm_ours(count: int) -> Callable[[], Run]:
                def timed() -> Run:
                    folder = our_workspace(parent)
                    return run_slurm(folder, lambda: submit_ours(folder, env, frames, count), env)

                return timed

            slurm_jobs = [
                ("original", slurm_original),
                ("ours, 1 frame/task", slurm_ours(1)),
                (f"ours, {per_task} frames/task", slurm_ours(per_task)),
            ]
            try:
                settings.append(run_setting("slurm", slurm_jobs, repeats, settle))
            finally:
                if cluster is not None:
                    from tools.local_slurm import stop

                    stop(cluster)
        peak = render_task_peak_mib(parent)
        task_seconds = render_task_against_floor(parent)
        quality_folder = parent / "quality"
        quality_folder.mkdir()
        quality = measure_quality(frames, quality_folder)

    report = table(settings)
    print(f"\nBenchmark, {mode}; {cores} cores; medians.\n")
    print(report)
    print(f"\nPeak memory of one render task (python volcano.py 1): {peak:.0f} MiB")
    print(
        f"Python start-up with imports: original {startup_original:.2f} s, "
        f"ours {startup_ours:.2f} s"
    )
    print(
        "\nOne-frame task start-up against the import floor (numpy, matplotlib, RendererAgg, "
        "PolyCollection), medians of 9 runs in rotated order:\n"
    )
    print(floor_table(task_seconds))
    print(quality_line(quality))
    args.output.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
    record = {
        "mode": "quick" if args.quick else "full",
        "frames": frames,
        "repeats": repeats,
        "cores": cores,
        "python": platform.python_version(),
        "when": stamp,
        "startup_seconds": {"original": startup_original, "ours": startup_ours},
        "render_task_peak_mib": peak,
        "render_task_seconds": task_seconds,
        "gif_quality": quality,
        "settings": [asdict(s) for s in settings],
        "settle_seconds": settle,
        "ratios": {
            f"{s.name}/{label}": median(s.original) / median(runs)
            for s in settings
            for label, runs in s.ours.items()
        },
        "paired_ratios": {
            f"{s.name}/{label}": paired_ratio(s.original, runs)
            for s in settings
            for label, runs in s.ours.items()
        },
    }
    target = args.output / f"bench-{stamp}.json"
    target.write_text(json.dumps(record, indent=2) + "\n")
    print(f"\nresults: {target}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
