"""Errors a user can act on: the stages and the CLI print their message and exit non-zero."""


class SimragError(Exception):
    """Base class: the message names the problem and, where possible, the fix."""


class ConfigError(SimragError):
    """A parameter is missing, mistyped or out of range."""


class DataError(SimragError):
    """An input file or folder is missing or unusable."""


class ModelNotFoundError(SimragError):
    """A model named in the params cannot be found locally (and the hub is off)."""
