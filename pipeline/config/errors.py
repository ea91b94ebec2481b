"""attnlab's own errors: the CLI prints each as one line (bad input exits 2, a full disk 1)."""


class ConfigError(ValueError):
    """Bad input caught before any compute: the message names the problem and the fix."""


class StorageFull(RuntimeError):
    """The sweep's storage ran out of space: the message says where, what is intact and how to go on."""
