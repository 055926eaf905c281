"""``python -m snapmixin``: the command line (see :mod:`snapmixin.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
