"""``python -m migctl``: the same as the ``migctl`` console script."""

import sys

from migctl.cli.main import run

sys.exit(run())
