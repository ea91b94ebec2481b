"""One error type for bad user input: the CLI prints its message and exits with status 2."""


class ConfigError(ValueError):
    """Bad input caught before any compute: the message names the problem and the fix."""
