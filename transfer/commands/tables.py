"""The console the commands print their tables on.

A terminal gets its own width, and long cells (destination paths, reasons) fold onto
more lines rather than end in an ellipsis. A pipe or a file gets rows that are never
wrapped or cut, so a plan saved for review names every destination in full and each row
stays on one line for grep.
"""

from __future__ import annotations

import sys

from rich.console import Console

#: Wide enough for any row the commands print; rich sizes columns to their content.
UNWRAPPED_WIDTH = 1000


def table_console() -> Console:
    return Console(width=None if sys.stdout.isatty() else UNWRAPPED_WIDTH)
