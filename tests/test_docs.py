"""The README, the guide and the tutorial stay true: their commands run, their examples match.

The tutorial's blocks themselves run in docs/ (tests/tutorial.py); here: its
shape, the README's GIF and commands, and the guide's commands and error example.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from tests.fakes import fake_slurm_env, sbatch_calls
from tests.helpers import REPO, copy_project, run
from tests.tutorial import fenced_blocks, paired, split_commands
from volcano_gif.assembly.assembler import FramesNotReadyError, resume_hint
from volcano_gif.paths import ProjectPaths
from volcano_gif.submit import check

README = (REPO / "README.md").read_text()
TUTORIAL = (REPO / "docs/tutorial.md").read_text()
GUIDE = REPO / "docs/guide"


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


def test_the_guide_s_cluster_commands_run(tmp_path: Path) -> None:
    block = _fenced((GUIDE / "cluster.md").read_text(), "# Running it on a cluster")
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


def test_the_guide_s_local_dry_run_is_what_it_prints(project: Path) -> None:
    page = (GUIDE / "watching.md").read_text()
    command = _fenced(page, "A dry run on this machine").strip()
    result = run(command.split(), cwd=project)
    assert result.returncode == 0, result.stderr
    printed = result.stdout.replace(str(project), "/home/me/volcano")
    printed = re.sub(r"on \d+ worker processes", "on 2 worker processes", printed)
    assert printed == _fenced(page, command, "text")


def test_the_guide_s_missing_frames_example_is_what_the_assembler_prints() -> None:
    page = (GUIDE / "missing-frames.md").read_text()
    shown = _fenced(page, "# When frames are missing", "").strip().splitlines()
    root = Path("/home/me/volcano")
    paths = ProjectPaths(root)
    problems = {17: f"missing: {paths.frame(17)}"}
    printed = f"volcano-gif: error: {FramesNotReadyError(problems, 360, resume_hint(paths))}"
    assert printed.splitlines() == shown


def test_the_guide_names_every_option_after_dashes_that_is_refused() -> None:
    from volcano_gif.submit.options import SHAPE_OPTIONS

    page = (GUIDE / "missing-frames.md").read_text()
    named = re.search(
        r"\*\*Options after `--` that would break the run's shape\*\*(.*?)\n\n", page, re.S
    )
    assert named
    assert set(re.findall(r"`--([a-z-]+)`", named.group(1))) >= set(SHAPE_OPTIONS)


def _command_blocks() -> list[tuple[int, str, bool]]:
    """(line, commands, skipped) for every command block of the tutorial."""
    blocks = []
    for start, _, shown in paired(TUTORIAL):
        line = TUTORIAL.count("\n", 0, start) + 1
        before = [text for text in TUTORIAL[:start].splitlines()[-6:] if text.strip()]
        skipped = bool(before) and before[-1] == "<!-- skip: next -->"
        blocks.append((line, shown.commands, skipped))
    return blocks


def test_the_tutorial_runs_nearly_every_block_and_says_which_it_does_not() -> None:
    blocks = _command_blocks()
    skipped = [block for block in blocks if block[2]]
    assert len(blocks) >= 40
    assert len(skipped) <= 1
    for line, _, _ in skipped:
        above = "\n".join(TUTORIAL.splitlines()[max(0, line - 8) : line])
        assert "Not run by the tests" in above, f"line {line}: say why it is not run"
    languages = {block.language for block in fenced_blocks(TUTORIAL)}
    assert languages == {"bash", "output", "mermaid"}  # no shell block escapes the tests


def test_every_block_a_reader_copies_pastes_into_bash_as_it_is() -> None:
    blocks = fenced_blocks(TUTORIAL)
    for index, block in enumerate(blocks):
        line = TUTORIAL.count("\n", 0, block.start) + 1
        if block.language == "output":  # right after its commands, or another output block
            before = blocks[index - 1] if index else None
            assert before is not None, line
            assert before.language in {"bash", "output"}, line
            assert not TUTORIAL[before.end : block.start].strip(), f"line {line}: text between"
            continue
        if block.language != "bash":
            continue
        for number, text in enumerate(block.source.splitlines(), start=line + 1):
            prompt = text.startswith(("$ ", "> ")) or text in {"$", ">"}
            assert not prompt, f"line {number}: a prompt in a block a reader copies: {text!r}"
            assert not re.search(r"<(id|time|node|size|name|version|path)>", text), (
                f"line {number}: output in a block a reader copies: {text!r}"
            )
        opened = re.findall(r"<<-?\s*'?(\w+)'?", block.source)
        for word in opened:
            assert re.search(rf"^{word}$", block.source, flags=re.MULTILINE), (
                f"line {line}: the heredoc {word} never closes"
            )


def test_a_prompt_or_an_output_line_in_a_command_block_is_caught() -> None:
    for bad in ("$ squeue --me\n", "cat > a <<'EOF'\n> text\n> EOF\n", "echo\n<id>\n"):
        page = f"```bash\n{bad}```\n"
        with pytest.raises(AssertionError):
            _check_copyable(page)
    _check_copyable("```bash\ncat > a <<'EOF'\ntext\nEOF\n```\n")


def _check_copyable(page: str) -> None:
    global TUTORIAL
    saved, TUTORIAL = TUTORIAL, page
    try:
        test_every_block_a_reader_copies_pastes_into_bash_as_it_is()
    finally:
        TUTORIAL = saved


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
    # The exercise is asked in the open; only its solution is folded away.
    assert re.search(rf"^\*\*Exercise {number}\.1\.\*\* ", body, flags=re.MULTILINE), title
    assert "<details><summary>Solution</summary>" in body
    assert body.rstrip().split("\n\n")[-2:][0] == "**Key points**", title
    # ... and a row in the schedule: core or optional, teaching, exercise and command minutes.
    schedule = TUTORIAL[TUTORIAL.index("**Schedule.**") : TUTORIAL.index("**Set-up, the day")]
    (row,) = [line for line in schedule.splitlines() if line.startswith(f"| [{title}]")]
    assert re.search(r"\| (core|optional) \| \d+ min \| \d+ min \| \d+ min \|$", row), row


@pytest.mark.parametrize("number", [2, 3, 4])
def test_the_core_episodes_after_the_first_say_how_to_get_back_after_a_lost_shell(
    number: int,
) -> None:
    body = _episode(number)
    box = body[body.index("**Lost your shell?**") :]
    assert "cd ~/volcano && source .venv/bin/activate" in box.split("```output")[0]


def _commands() -> list[tuple[int, str]]:
    """(line, command) of every command the tutorial runs, in order."""
    return [
        (line, command)
        for line, source, skipped in _command_blocks()
        if not skipped
        for command in split_commands(source)
    ]


def _set_up_block() -> str:
    """The set-up block: the one block the tests do not run as the page's."""
    (block,) = [source for _, source, skipped in _command_blocks() if skipped]
    assert "git clone <this repository's address> ~/volcano" in block
    return block


def _paste(block: str, home: Path, path: str) -> subprocess.CompletedProcess[str]:
    """``block`` pasted into a new interactive-like bash in ``home/start``, then where it is."""
    start = home / "start"
    start.mkdir(parents=True, exist_ok=True)
    script = block + 'echo "in $PWD, VIRTUAL_ENV=${VIRTUAL_ENV:-none}"\n'
    env = {"HOME": str(home), "PATH": path, "LANG": "C.UTF-8"}
    return subprocess.run(
        ["bash", "--noprofile", "--norc"],
        input=script,
        cwd=start,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_set_up_block_stops_where_the_clone_fails(tmp_path: Path) -> None:
    # A wrong address: the clone fails, and nothing after it runs: no ~/.venv in the home,
    # no "does not appear to be a Python project", no venv activated, still where it began.
    block = _set_up_block().replace("<this repository's address>", str(tmp_path / "nowhere"))
    pasted = _paste(block, tmp_path / "home", os.environ["PATH"])
    said = pasted.stdout + pasted.stderr
    assert "fatal: repository" in said, said
    assert "Python project" not in said
    assert not (tmp_path / "home/.venv").exists()
    assert not (tmp_path / "home/volcano").exists()
    assert pasted.stdout.splitlines()[-1] == f"in {tmp_path}/home/start, VIRTUAL_ENV=none"
    # The first line fails where a site has no modules; the page says to skip it.
    assert "module: command not found" in pasted.stderr


def test_the_set_up_block_runs_to_the_activated_venv_when_the_clone_works(
    tmp_path: Path,
) -> None:
    fakes = tmp_path / "bin"  # python3 -m venv and pip, fast: what they leave, not the install
    fakes.mkdir()
    (fakes / "python3").write_text(
        '#!/bin/sh\nmkdir -p "$3/bin"\n'
        'printf \'VIRTUAL_ENV=%s/%s\\n\' "$PWD" "$3" > "$3/bin/activate"\n'
        'printf \'#!/bin/sh\\necho installed "$@"\\n\' > "$3/bin/pip"\n'
        'chmod +x "$3/bin/pip"\n'
    )
    (fakes / "python3").chmod(0o755)
    block = _set_up_block().replace("<this repository's address>", str(REPO))
    pasted = _paste(block, tmp_path / "home", f"{fakes}:{os.environ['PATH']}")
    assert "installed install -e ." in pasted.stdout, pasted.stdout + pasted.stderr
    home = tmp_path / "home"
    assert pasted.stdout.splitlines()[-1] == f"in {home}/volcano, VIRTUAL_ENV={home}/volcano/.venv"


def test_the_learner_types_their_own_sbatch_before_submit_gif_job_appears() -> None:
    commands = [command for _, command in _commands()]
    first_sbatch = next(k for k, command in enumerate(commands) if "sbatch " in command)
    first_wrapper = next(k for k, command in enumerate(commands) if "submit-gif-job" in command)
    assert first_sbatch < first_wrapper
    assert "my-frames.sh" in commands[first_sbatch]
    assert TUTORIAL.index("sbatch --parsable --hold my-frames.sh") < TUTORIAL.index(
        "submit-gif-job"
    )


def test_the_failed_tasks_are_found_and_rendered_again_by_hand_before_resume_does_it() -> None:
    body = _episode(4)
    by_hand = body.index("--state FAILED")
    assert (
        by_hand
        < body.index("sbatch --parsable --array=5,9")
        < body.index("```bash\nbash submit-gif-job --resume\n```")
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
        for loop in re.findall(r"squeue --me --noheader --jobs \"([^\"]*)\"", command):
            assert all(":?}" in job for job in loop.split(",")), f"line {line}: guard {loop}"
    assert "debug" not in TUTORIAL  # the test cluster's partition is not the reader's


def test_the_instructor_notes_have_the_checklist_and_the_class_size_table() -> None:
    notes = (REPO / "docs/instructors.md").read_text()
    assert "(instructors.md)" in TUTORIAL
    for heading in (
        "## The checklist",
        "## How many jobs a class makes",
        "## What to recommend",
        "## Errors learners hit",
        "## Timings",
    ):
        assert heading in notes, heading
    for step in (
        "VOLCANO_TUTORIAL_CLUSTER=current VOLCANO_TUTORIAL_PACE=5",
        "volcano-gif check",
        "scancel --me --state=PENDING",
        "unset SBATCH_RESERVATION",
        "--kill-on-invalid-dep=no",
        ".venv/bin/pip install -e '.[test]'",  # the page run needs pytest
        "`SLURM_CONF`, where the site's Slurm needs it, must reach non-interactive",
        "**Helpers under `PrivateData=jobs`**",
    ):
        assert step in notes, step
    # Every site setting the check notes, in the table of what to tell learners.
    table = notes[notes.index("**The site's settings, as `volcano-gif check` notes them.**") :]
    for setting in ("SBATCH_PARTITION", "SBATCH_ACCOUNT", *check.SITE_NOTES, "MaxSubmitJobs"):
        assert re.search(rf"^\| `{setting}", table, flags=re.MULTILINE) or (
            f"| `... {setting}" in table
        ), setting
    errors = notes[notes.index("## Errors learners hit") :]
    assert "| `Job has already finished`" in errors
    assert "kill_invalid_depend" in errors
    assert "volcano-gif check" in TUTORIAL
    table = notes[notes.index("## How many jobs a class makes") :]
    for learners in (1, 10, 30):
        assert re.search(rf"^\| {learners} \|", table, flags=re.MULTILINE), learners


def test_the_tutorial_pictures_exist() -> None:
    for picture in re.findall(r"\]\((images/[^)]+)\)", TUTORIAL):
        assert (REPO / "docs" / picture).is_file(), picture
    for picture in re.findall(r"\]\((docs/[^)]+)\)", README):
        assert (REPO / picture).is_file(), picture
    for page in GUIDE.glob("*.md"):
        for picture in re.findall(r"\]\((\.\./images/[^)]+)\)", page.read_text()):
            assert (GUIDE / picture).is_file(), f"{page.name}: {picture}"


def test_the_readme_exit_status_table_is_the_codes_the_commands_return() -> None:
    from volcano_gif.arguments import EXIT_CANCELLED, EXIT_FAILURE, EXIT_USAGE
    from volcano_gif.submit.check import EXIT_INTERRUPTED

    table = README.split("| status | meaning |", 1)[1].split("\n\n", 1)[0]
    listed = [int(code) for code in re.findall(r"^\| (\d+) \|", table, flags=re.MULTILINE)]
    assert listed == [0, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_CANCELLED]
