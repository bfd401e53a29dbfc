"""The floor: the same loop, the same dict, a no-op Python function instead of send_log."""
import json
import sys
import time


def noop(data):
    pass


def main(n, result_file):
    send_log = noop
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
    with open(result_file, 'w') as f:
        json.dump({'seconds': elapsed, 'logs': n}, f)


if __name__ == '__main__':
    main(int(sys.argv[1]), sys.argv[2])
