#!/usr/bin/env python3
"""Render frame N of the rotating volcano: ``python volcano.py N``.

Run ``python volcano.py --help`` for the options. The work is done by the
``volcano_gif`` package beside this file; this script only finds it.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from volcano_gif.task.main import exit_without_teardown, volcano_main  # noqa: E402

if __name__ == "__main__":
    exit_without_teardown(volcano_main(ROOT))
