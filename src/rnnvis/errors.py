"""One error type for everything a user can get wrong.

Every message says what is wrong and how to fix it; the CLI prints it on one
line and exits non-zero, the server turns it into a 4xx JSON body.
"""
from __future__ import annotations


class RnnvisError(Exception):
    """A problem with the user's input or environment, with a hint to fix it."""

    def __init__(self, what: str, fix: str | None = None):
        self.what = what
        self.fix = fix
        super().__init__(what if not fix else f"{what} — {fix}")


class NotFound(RnnvisError):
    """Something named by the user (data set, model, recording) does not exist."""
