"""The README and the tutorial stay true: their commands run, their examples match the code.

The tutorial's blocks themselves run in docs/ (tests/tutorial.py); here: its
shape, the README's GIF and commands, and the README's error example.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image

from tests.fakes import fake_slurm_env
from tests.fakes import sbatch_calls
from tests.helpers import REPO
from tests.helpers import copy_project
from tests.helpers import run
from tests.tutorial import parse_console
from volcano_gif.assembly.assembler import FramesNotReadyError
from volcano_gif.assembly.assembler import resume_hint
from volcano_gif.layout import ProjectPaths

README = (REPO / "README.md").read_text()
TUTORIAL = (REPO / "docs/tutorial.md").read_text()


def _fenced(text: str, after: str, language: str = "bash") -> str:
    start = text.index(after)
    return text[start:].split(f"```{language}\n", 1)[1].split("```", 1)[0]


def test_the_readme_links_the_tutorial_near_the_top_and_shows_the_gif() -> None:
    top = README[: README.index("## Two commands")]
    assert "(docs/tutorial.md)" in top
    assert "![The volcano, turning](docs/volcano.gif)" in top


def test_the_readme_gif_is_what_its_command_makes(project: Path) -> None:
    command = re.search(r"with\s+`(bash submit-gif-job --local [^`]*)`", README)
    assert command, "the README says which command made docs/volcano.gif"
    gif = REPO / "docs/volcano.gif"
    assert gif.stat().st_size < 1_000_000
    result = run(command.group(1).split(), cwd=project)
    assert result.returncode == 0, result.stderr
    with Image.open(gif) as shown, Image.open(project / "output/gifs/volcano.gif") as made:
        assert (made.n_frames, made.size) == (shown.n_frames, shown.size)  # type: ignore[attr-defined]
        assert made.info["duration"] == shown.info["duration"]


def test_the_readme_cluster_commands_run(tmp_path: Path) -> None:
    block = _fenced(README, "## Running it on a cluster")
    commands = [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]
    assert len(commands) == 7
    for index, command in enumerate(commands):
        project = copy_project(tmp_path / f"project{index}")
        folder = tmp_path / f"slurm{index}"
        folder.mkdir()
        words = command.split()
        settings = dict(word.split("=", 1) for word in words if re.match(r"^[A-Z_]+=", word))
        words = [word for word in words if not re.match(r"^[A-Z_]+=", word)]
        result = run(words, cwd=project, env=fake_slurm_env(folder, **settings))
        if "--watch" in words:  # fake jobs never produce a GIF: the watch says so, exit 1
            assert result.returncode == 1, result.stderr
            assert "finish it with: bash submit-gif-job --resume" in result.stderr
        else:
            assert result.returncode == 0, f"{command}: {result.stderr}"
        submitted = len(sbatch_calls(folder / "slurm.log"))
        assert submitted == (0 if "--dry-run" in words else 2), command


def test_the_readme_missing_frames_example_is_what_the_assembler_prints() -> None:
    shown = _fenced(README, "## When frames are missing", "").strip().splitlines()
    root = Path("/home/me/volcano")
    paths = ProjectPaths(root)
    problems = {17: f"missing: {paths.frame(17)}"}
    printed = f"volcano-gif: error: {FramesNotReadyError(problems, 360, resume_hint(paths))}"
    assert printed.splitlines() == shown


def _console_blocks() -> list[tuple[int, str, bool]]:
    """(line, source, skipped) for every console block of the tutorial."""
    blocks = []
    lines = TUTORIAL.splitlines()
    for number, line in enumerate(lines):
        if line == "```console":
            end = lines.index("```", number + 1)
            before = [text for text in lines[max(0, number - 6) : number] if text.strip()]
            skipped = bool(before) and before[-1] == "<!-- skip: next -->"
            blocks.append((number + 1, "\n".join(lines[number + 1 : end]), skipped))
    return blocks


def test_the_tutorial_runs_nearly_every_block_and_says_which_it_does_not() -> None:
    blocks = _console_blocks()
    skipped = [block for block in blocks if block[2]]
    assert len(blocks) >= 40
    assert len(skipped) <= 2
    for line, _, _ in skipped:
        above = "\n".join(TUTORIAL.splitlines()[max(0, line - 8) : line])
        assert "Not run by the tests" in above, f"line {line}: say why it is not run"
    for _, source, _ in blocks:
        assert parse_console(source), source  # every block is commands and their output
    fences = re.findall(r"^```(\w*)$", TUTORIAL, flags=re.MULTILINE)
    assert set(fences) == {"console", ""}  # no shell block escapes the tests


EPISODES = range(1, 9)


def _episode(number: int) -> str:
    parts = re.split(r"^## ", TUTORIAL, flags=re.MULTILINE)
    (body,) = [part for part in parts if part.startswith(f"{number}. ")]
    return body


@pytest.mark.parametrize("number", EPISODES)
def test_every_episode_has_questions_objectives_an_exercise_and_key_points(number: int) -> None:
    body = _episode(number)
    title = body.splitlines()[0]
    assert "\n**Questions:** " in body
    assert "\n**Objectives:** " in body
    assert "<details><summary>Exercise:" in body
    assert body.rstrip().split("\n\n")[-2:][0] == "**Key points**", title
    # ... and a row in the schedule: core or optional, teaching and exercise minutes.
    schedule = TUTORIAL[TUTORIAL.index("**Schedule.**") : TUTORIAL.index("**Set-up.**")]
    (row,) = [line for line in schedule.splitlines() if line.startswith(f"| [{title}]")]
    assert re.search(r"\| (core|optional) \| \d+ min \| \d+ min \| \d+ s \|$", row), row


def _commands() -> list[tuple[int, str]]:
    """(line, command) of every command the tutorial runs, in order."""
    return [(line, step.command) for line, source, skipped in _console_blocks() if not skipped
            for step in parse_console(source)]  # fmt: skip


def test_the_learner_types_their_own_sbatch_before_submit_gif_job_appears() -> None:
    commands = [command for _, command in _commands()]
    first_sbatch = next(k for k, command in enumerate(commands) if "sbatch " in command)
    first_wrapper = next(k for k, command in enumerate(commands) if "submit-gif-job" in command)
    assert first_sbatch < first_wrapper
    assert "my-frames.sh" in commands[first_sbatch]
    assert TUTORIAL.index("sbatch --parsable --hold my-frames.sh") < TUTORIAL.index(
        "submit-gif-job"
    )


def test_the_tutorial_is_safe_and_portable_on_a_shared_cluster() -> None:
    for line, command in _commands():
        for squeue in re.findall(r"squeue[^|;&]*", command):
            assert "--me" in squeue or " -u " in squeue, f"line {line}: {squeue}"
        for seconds in re.findall(r"\bsleep (\d+)", command):
            assert int(seconds) >= 10, f"line {line}: poll every 10 s or more: {command}"
        assert "/dev/null" not in command, f"line {line}: never throw stderr away: {command}"
        assert not re.search(r"\bsed\b[^|]*s/", command), f"line {line}: no sed on output"
        assert not re.search(r"\btree\b", command), f"line {line}: tree differs by version"
        assert "$FRAMES" not in command, f"line {line}: a variable lost on reconnect"
    assert "debug" not in TUTORIAL  # the test cluster's partition is not the reader's


def test_the_instructor_notes_have_the_class_size_table() -> None:
    notes = (REPO / "docs/instructors.md").read_text()
    assert "(instructors.md)" in TUTORIAL
    for heading in ("## What to ask the site for", "## How many jobs a class makes",
                    "## What to recommend", "## Errors learners hit", "## Timings"):  # fmt: skip
        assert heading in notes, heading
    table = notes[notes.index("## How many jobs a class makes") :]
    for learners in (1, 10, 30):
        assert re.search(rf"^\| {learners} \|", table, flags=re.MULTILINE), learners


def test_the_tutorial_pictures_exist() -> None:
    for picture in re.findall(r"\]\((images/[^)]+)\)", TUTORIAL):
        assert (REPO / "docs" / picture).is_file(), picture
    for picture in re.findall(r"\]\((docs/[^)]+)\)", README):
        assert (REPO / picture).is_file(), picture
