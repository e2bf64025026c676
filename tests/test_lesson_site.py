"""The lesson on a stricter site: one that needs a partition and an account, cancels jobs
whose dependency can never be met, hides other users' jobs, caps arrays at 500 and queues
at most 50 jobs per learner (the ``strict_slurm`` cluster of tests/clusters.py).

There the learner's login shell sets ``SBATCH_PARTITION`` and ``SBATCH_ACCOUNT``, as the
page tells them to, and a site's run of the page (``VOLCANO_TUTORIAL_CLUSTER=current``)
keeps them; a block pasted twice leaves a stray held array, which the page finds and
cancels.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from tests.clusters import STRICT_LOGIN
from tests.helpers import REPO
from tests.slurm_helpers import cluster_env, learner
from tests.tutorial import (
    ShellSession,
    Shown,
    end_session,
    learner_reader,
    matches,
    paired,
    readers_env,
    run_shown,
    split_commands,
    start_session,
)
from tools.local_slurm import Cluster

TUTORIAL = (REPO / "docs/tutorial.md").read_text()


def _page(until: str) -> list[tuple[int, Shown]]:
    """(line, block) of every block the page runs, up to the heading ``until``."""
    end = TUTORIAL.index(f"\n## {until}")
    return [
        (TUTORIAL.count("\n", 0, start) + 1, shown)
        for start, _, shown in paired(TUTORIAL)
        if start < end and "<!-- skip: next -->" not in TUTORIAL[start - 30 : start]
    ]


def _block(text: str) -> Shown:
    """The page's one block whose commands hold ``text``."""
    (shown,) = [shown for _, _, shown in paired(TUTORIAL) if text in shown.commands]
    return shown


def test_a_site_run_keeps_the_login_shells_site_settings_and_ours_stay_clean(
    tmp_path: Path,
) -> None:
    login = {
        "PATH": "/usr/bin:/bin",
        **STRICT_LOGIN,
        "SQUEUE_FORMAT": "%i %j",
        "VOLCANO_TUTORIAL_PACE": "5",  # the harness's own
        "MPLCONFIGDIR": "/elsewhere",  # a cache of another run: the page shows a new one
        "PYTHONUNBUFFERED": "1",
    }
    site = readers_env(tmp_path / ".venv", tmp_path, "/site/slurm.conf", login, site=True)
    ours = readers_env(tmp_path / ".venv", tmp_path, "/ours/slurm.conf", login, site=False)
    for name in ("SBATCH_PARTITION", "SBATCH_ACCOUNT", "SQUEUE_FORMAT"):
        assert site[name] == login[name]
    assert not {"SBATCH_PARTITION", "SBATCH_ACCOUNT"} & set(ours)
    for env in (site, ours):
        assert not {"VOLCANO_TUTORIAL_PACE", "MPLCONFIGDIR", "PYTHONUNBUFFERED"} & set(env)
        assert env["VIRTUAL_ENV"] == str(tmp_path / ".venv")
    assert (site["SLURM_CONF"], ours["SLURM_CONF"]) == ("/site/slurm.conf", "/ours/slurm.conf")


def test_a_site_that_needs_a_partition_and_an_account_runs_the_page(
    strict_slurm: Cluster,
) -> None:
    # The set-up's check, episode 1 (every sbatch needs the partition and the account)
    # and episode 2 (kill_invalid_depend), as the learner, in a site's run of the page.
    namespace: dict[str, Any] = {}
    start_session(namespace, learner_reader(strict_slurm, login=STRICT_LOGIN))
    blocks = _page(until="3. ")
    try:
        with warnings.catch_warnings(record=True) as warned:
            warnings.simplefilter("always")
            for line, shown in blocks:
                run_shown(namespace, shown, line)
    finally:
        namespace["session"].run("scancel --me")
        end_session(namespace)
    assert namespace["executed"] == len(blocks)
    # Only the check differs, as the site's own: its notes name the site's settings.
    (check,) = [str(warning.message) for warning in warned]
    assert "note SBATCH_PARTITION=debug: needed" in check
    assert "note DependencyParameters=kill_invalid_depend" in check


def test_a_block_pasted_twice_leaves_a_stray_array_that_the_page_cancels(
    strict_slurm: Cluster, learner_project: Path
) -> None:
    env = learner().env(cluster_env(strict_slurm, **STRICT_LOGIN))
    shell = learner().command(["bash", "--noprofile", "--norc"])
    session = ShellSession(shell, learner_project, env)

    def paste(shown: Shown) -> list[str]:
        printed: list[str] = []
        for command in split_commands(shown.commands):
            said, status = session.run(command)
            assert status == 0, (command, said)
            printed += said
        return printed

    try:
        paste(_block("cat > my-frames.sh"))
        held = _block("array=$(sbatch --parsable --hold my-frames.sh)\necho")
        paste(held)
        twice = paste(held)
        assert len(twice) == 4, twice  # its id, then squeue: a header and two held arrays
        # $array names the second; once it has run, the first stays held, queued, and
        # its 24 tasks count against the limit of 50: exercise 1.1's 36 are refused.
        every10 = split_commands(_block("every10=$(sbatch").commands)[0]
        assert session.run('scancel "$array"')[1] == 0
        refused, status = session.run(every10)
        assert status != 0
        assert "AssocMaxSubmitJobLimit" in " ".join(refused)
        # The page's clean-up leaves what the page shows; once that array has run, the
        # exercise fits.
        cleanup = _block("scancel --me --name my-frames")
        (shown,) = cleanup.outputs
        assert matches(shown.source.splitlines(), paste(cleanup))
        assert session.run('scancel "$array"')[1] == 0
        assert session.run(every10)[1] == 0
    finally:
        session.run("scancel --me")
        session.close()
