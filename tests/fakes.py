"""Fake programs on PATH, for argument handling and failure paths only."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

FAKE_SBATCH = """#!{python}
# Fake sbatch: records its arguments as one JSON line, answers like --parsable.
import json, os, sys
log = os.environ["FAKE_SBATCH_LOG"]
with open(log, "a") as handle:
    handle.write(json.dumps({{"args": sys.argv[1:], "cwd": os.getcwd()}}) + "\\n")
calls = sum(1 for _ in open(log))
if os.environ.get("FAKE_SBATCH_FAIL_CALL") == str(calls):
    print("sbatch: error: invalid partition specified: nope", file=sys.stderr)
    sys.exit(1)
answers = os.environ.get("FAKE_SBATCH_ANSWERS", "1001;cluster1,1002").split(",")
print(answers[calls - 1])
"""


def install_fake_sbatch(bin_dir: Path) -> Path:
    bin_dir.mkdir(parents=True, exist_ok=True)
    fake = bin_dir / "sbatch"
    fake.write_text(FAKE_SBATCH.format(python=sys.executable))
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    return fake


def sbatch_calls(log: Path) -> list[dict[str, object]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]
