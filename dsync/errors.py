"""Errors the CLI reports on one line, without a traceback."""


class CommandError(Exception):
    """A failure to report with exit code 1; the message says what went wrong and what to do."""
