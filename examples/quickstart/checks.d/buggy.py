"""A check with a bug, to show how errors look: its first run (and every other run after it)
divides by the instance's `divisor`, which is 0. An unknown instance key is a configuration
error. The log it sends before failing still ships."""
import time

from datadog_checks.base import AgentCheck, ConfigurationError

KNOWN_KEYS = {'divisor', 'min_collection_interval', 'tags', 'name'}


class BuggyCheck(AgentCheck):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.runs = 0

    def check(self, instance):
        unknown = sorted(set(instance) - KNOWN_KEYS)
        if unknown:
            raise ConfigurationError('unknown instance key(s): ' + ', '.join(unknown))
        self.runs += 1
        self.send_log({'message': 'buggy run %d starting' % self.runs, 'timestamp': time.time()})
        if self.runs % 2 == 1:
            self.gauge('quickstart.buggy.ratio', self.ratio(instance.get('divisor', 0)), raw=True)
        else:
            self.gauge('quickstart.buggy.ratio', 1.0, raw=True)

    def ratio(self, divisor):
        return 100 / divisor
