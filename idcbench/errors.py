"""Errors a user can cause.

A `UserError` carries one line that says what went wrong, where, and how to fix it. The CLI prints that line
and exits with code 2, never a traceback. Library code raises it for anything the user can correct: a bad file,
a missing image, an unknown name, a missing Java runtime or weights file.

>>> raise UserError("predictions.json: line 3, column 5: invalid JSON (Expecting ',' delimiter)")
Traceback (most recent call last):
...
idcbench.errors.UserError: predictions.json: line 3, column 5: invalid JSON (Expecting ',' delimiter)
"""

from __future__ import annotations

EXIT_USER_ERROR = 2


class UserError(Exception):
    """A problem the user can fix; its message is one line shown without a traceback."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split("\n")))
