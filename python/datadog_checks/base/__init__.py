"""The part of ``datadog_checks.base`` that custom checks use, bundled with Cairn."""
from .checks import AgentCheck
from .config import is_affirmative
from .errors import CheckException, ConfigurationError

__all__ = ['AgentCheck', 'CheckException', 'ConfigurationError', 'is_affirmative']
