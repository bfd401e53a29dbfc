"""The metrics hand-off benchmark's check: one run submits N samples over C contexts and
writes the loop's wall time to `result_file`. `mode` is `gauge` (gauges only) or `mixed`
(40 % gauge, 20 % count, 20 % monotonic_count, 20 % histogram). The same loop runs under
plain python3 against a no-op object for the floor (floor.py)."""
import json
import time

try:
    from datadog_checks.base import AgentCheck
except ImportError:  # the floor runs without any datadog_checks
    AgentCheck = object


def tag_sets(contexts):
    return [['env:bench', 'shard:%d' % (i % 100), 'ctx:%d' % i, 'team:core'] for i in range(contexts)]


def loop(target, n, contexts, mode):
    tags = tag_sets(contexts)
    gauge, count, mono, hist = target.gauge, target.count, target.monotonic_count, target.histogram
    start = time.perf_counter()
    if mode == 'gauge':
        for i in range(n):
            gauge('bench.gauge', i, tags=tags[i % contexts])
    else:
        for i in range(n):
            k = i % 5
            t = tags[i % contexts]
            if k < 2:
                gauge('bench.gauge', i, tags=t)
            elif k == 2:
                count('bench.count', 1, tags=t)
            elif k == 3:
                mono('bench.mono', i, tags=t)
            else:
                hist('bench.hist', i % 1000, tags=t)
    return time.perf_counter() - start


class MetricsBench(AgentCheck):
    def check(self, instance):
        n = int(instance['samples'])
        elapsed = loop(self, n, int(instance['contexts']), instance['mode'])
        with open(instance['result_file'], 'w') as f:
            json.dump({'seconds': elapsed, 'samples': n}, f)
