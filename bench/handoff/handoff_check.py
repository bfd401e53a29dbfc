"""The hand-off benchmark's check: one run sends N logs shaped like the seed's structured
example and writes the loop's wall time to `result_file`. The same file runs under cairn
(bundled base) and under plain python3 with the real datadog-checks-base."""
import json
import time

from datadog_checks.base import AgentCheck


class HandoffBench(AgentCheck):
    def check(self, instance):
        n = int(instance['logs'])
        send_log = self.send_log
        start = time.perf_counter()
        for i in range(n):
            send_log({
                'message': 'Database query completed',
                'timestamp': time.time(),
                'status': 'info',
                'service': 'my-custom-integration',
                'source': 'custom_check',
                'query_duration_ms': 145,
                'rows_returned': 1024
            })
        elapsed = time.perf_counter() - start
        with open(instance['result_file'], 'w') as f:
            json.dump({'seconds': elapsed, 'logs': n}, f)
