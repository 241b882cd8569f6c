"""``python -m bench`` (see ``bench/cli.py``; ``scripts/bench`` prepares the machine first)."""

import sys

from .cli import main

sys.exit(main())
