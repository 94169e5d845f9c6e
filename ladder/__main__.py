"""``python -m ladder``: the same program as the ``ladder`` command."""

import sys

from ladder.cli import main

sys.exit(main())
