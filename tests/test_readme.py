"""Every command the README shows runs as written, in order, in a fresh clone.

One bash session, as a newcomer's: a copy of what a clone has, none of our
settings, the test's own virtual environment off PATH (so ``volcano-gif``
is found only once the README's ``source .venv/bin/activate`` has run), and
fake Slurm programs first on PATH standing in for a cluster (tests/fakes.py),
so that command 1 submits (to nothing) and ``--local`` renders for real. Two
commands are held to their text instead of run: the test command (CI runs it,
tests/test_scripts.py) and the ``apt-get`` lines (CI's own install line has
every package they name). The web server is run on a free port, then stopped.
"""

from __future__ import annotations

import os
import re
import socket
import sys
import time
import urllib.request
from pathlib import Path

from tests.fakes import install_fake_slurm, sbatch_calls
from tests.helpers import REPO
from tests.tutorial import ShellSession, fenced_blocks, fresh_checkout, split_commands

README = (REPO / "README.md").read_text()
CI = (REPO / ".ci/run").read_text()


def _commands() -> list[str]:
    return [
        command
        for block in fenced_blocks(README)
        if block.language == "bash"
        for command in split_commands(block.source)
    ]


def _newcomer_env(fakes: Path, log: Path) -> dict[str, str]:
    ours = str(Path(sys.executable).parent)
    path = [folder for folder in os.environ["PATH"].split(os.pathsep) if folder != ours]
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("VOLCANO_", "SBATCH_", "SLURM_", "VIRTUAL_ENV", "FAKE_"))
    }
    return {**env, "PATH": os.pathsep.join([str(fakes), *path]), "FAKE_SLURM_LOG": str(log)}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _serves(session: ShellSession, command: str) -> None:
    """Start the README's web server (on a free port), read its home page, stop it."""
    port = _free_port()
    printed, status = session.run(f"{command.replace('8000', str(port))} & server=$!")
    assert status == 0, printed
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html") as page:
                assert "volcano-gif" in page.read().decode()
                break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    session.run('kill "$server" && wait "$server"')


def test_every_readme_command_runs_as_written_in_a_fresh_clone(tmp_path: Path) -> None:
    commands = _commands()
    assert len(commands) >= 8
    clone = fresh_checkout(tmp_path / "volcano")
    log = tmp_path / "slurm.log"
    env = _newcomer_env(install_fake_slurm(tmp_path / "fakebin"), log)
    session = ShellSession(["bash", "--noprofile", "--norc"], clone, env)
    ran = []
    try:
        for command in commands:
            if command.endswith(" -m pytest"):  # the suite itself: CI runs exactly this line
                assert f"\n{command}\n" in CI
            elif command.startswith("apt-get install"):
                installed = re.search(r"apt-get install -y -qq(?:[^\n\\]|\\\n)*", CI)
                assert installed is not None
                wanted = [word for word in command.split("#")[0].split()[2:] if word[0] != "-"]
                assert set(wanted) <= set(installed[0].split()), command
            elif "http.server" in command:
                _serves(session, command)
            else:
                printed, status = session.run(command, timeout=900)
                assert status == 0, f"{command}\n" + "\n".join(printed)
                ran.append(command)
    finally:
        session.close()
    assert len(sbatch_calls(log)) == 2  # command 1, on the "cluster"
    assert (clone / "output/gifs/volcano.gif").is_file()  # --local
    assert (clone / "site/tutorial/2-dependencies.html").is_file()
    assert any(command.startswith("source .venv/bin/activate") for command in ran)
