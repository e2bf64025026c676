"""``python -m volcano_gif``: the ``volcano-gif`` command."""

import sys

from volcano_gif.cli import main

sys.exit(main())
