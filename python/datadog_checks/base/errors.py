"""Errors a check may raise."""


class CheckException(Exception):
    """Generic error raised by a check."""


class ConfigurationError(Exception):
    """The check's instance or init_config is invalid."""
