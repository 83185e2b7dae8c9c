"""Progress bars that stay readable in a terminal and quiet in a log file or CI."""
from __future__ import annotations

import sys

from tqdm.auto import tqdm


def progress_bar(**kwargs) -> tqdm:
    """A tqdm bar redrawn ten times a second on a terminal, every 15 s when stderr is a file/pipe."""
    interactive = sys.stderr.isatty()
    kwargs.setdefault("mininterval", 0.1 if interactive else 15.0)
    kwargs.setdefault("dynamic_ncols", interactive)
    return tqdm(**kwargs)
