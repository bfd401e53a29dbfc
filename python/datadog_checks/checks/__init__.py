"""Legacy import path: ``from datadog_checks.checks import AgentCheck``."""
from ..base.checks import *  # noqa: F401,F403
from ..base.checks import AgentCheck  # noqa: F401
from ..base.errors import CheckException  # noqa: F401
