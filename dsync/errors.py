"""Errors the CLI reports on one line, without a traceback."""


class CommandError(Exception):
    """A failure to report with exit code 1; the message says what went wrong and what to do."""


# The CLI's WorkOS client: an operator waits at a terminal, so a hung WorkOS is reported in about 10 s (two attempts
# of 5 s), not the Lambdas' 84 s budget (four attempts of 20 s).
CLI_WORKOS_TIMEOUT_SECONDS = 5.0
CLI_WORKOS_UNAVAILABLE_RETRIES = 1
