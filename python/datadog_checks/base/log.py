"""Routes Python ``logging`` records of checks to the agent's log."""
import logging

import datadog_agent

TRACE_LEVEL = 7
logging.addLevelName(TRACE_LEVEL, 'TRACE')


class AgentLogHandler(logging.Handler):
    """Hands each record to ``datadog_agent.log``; the agent adds the check id."""

    def emit(self, record):
        try:
            datadog_agent.log(self.format(record), record.levelno)
        except Exception:
            self.handleError(record)


_LEVELS = {
    'trace': TRACE_LEVEL,
    'debug': logging.DEBUG,
    'info': logging.INFO,
    'warn': logging.WARNING,
    'warning': logging.WARNING,
    'error': logging.ERROR,
    'critical': logging.CRITICAL,
    'off': logging.CRITICAL + 10,
}


def init_logging():
    """Installs the agent handler on the root logger once, at the agent's ``log_level``."""
    root = logging.getLogger()
    if any(isinstance(h, AgentLogHandler) for h in root.handlers):
        return
    handler = AgentLogHandler()
    handler.setFormatter(logging.Formatter('%(message)s'))
    root.addHandler(handler)
    level = str(datadog_agent.get_config('log_level') or 'info').lower()
    root.setLevel(_LEVELS.get(level, logging.INFO))


class CheckLoggingAdapter(logging.LoggerAdapter):
    """The ``self.log`` of a check: a logger that also offers ``trace``."""

    def trace(self, msg, *args, **kwargs):
        self.log(TRACE_LEVEL, msg, *args, **kwargs)
