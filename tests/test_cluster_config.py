"""What ``scontrol show config`` tells the pipeline, on every Slurm version it meets."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes import fake_slurm_env
from volcano_gif import slurm


@pytest.mark.parametrize(
    ("storage", "accounting"),
    [
        ("accounting_storage/slurmdbd", True),
        ("accounting_storage/mysql", True),
        ("accounting_storage/none", False),  # Slurm 22.05 without accounting
        ("(null)", False),  # Slurm 23.11 and later without accounting
        ("", False),
    ],
)
def test_accounting_is_on_only_where_a_storage_plugin_keeps_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, storage: str, accounting: bool
) -> None:
    for name, value in fake_slurm_env(tmp_path, FAKE_ACCOUNTING_STORAGE=storage).items():
        monkeypatch.setenv(name, value)
    config = slurm.read_config()
    assert config.accounting is accounting
    assert (config.max_array_size, config.version) == (1001, "22.05.8")
