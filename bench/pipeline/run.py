#!/usr/bin/env python3
"""End-to-end pipeline benchmark: a Python check emitting the seed's structured log through
`cairn run` (release build, durable buffer with its fsync policy on) into a local HTTP sink
that only counts. Prints sustained logs/s and bytes/s, CPU seconds per million logs and peak
RSS for zstd and gzip, next to a same-run reference: the same check with `--discard-logs`
(the raw hand-off rate). Then the cursor cost: check-run period with 1 and 10,000 cursor
updates per run.

Usage: python3 bench/pipeline/run.py [--secs 20]   (from the repo root; builds first)
"""
import json, os, shutil, signal, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TARGET = os.environ.get('CARGO_TARGET_DIR', os.path.join(ROOT, 'target'))
SECS = float(sys.argv[sys.argv.index('--secs') + 1]) if '--secs' in sys.argv else 20.0
WARMUP = 4.0
PORT = 18600 + os.getpid() % 1000

STRUCTURED = '''
from datadog_checks.base import AgentCheck
import time

class MyCustomCheck(AgentCheck):
    def check(self, instance):
        send = self.send_log
        for _ in range(int(instance.get('per_run', 100000))):
            # The seed's "Structured logging with metadata" example.
            send({
                'message': 'Database query completed',
                'timestamp': time.time(),
                'status': 'info',
                'service': 'my-custom-integration',
                'source': 'custom_check',
                'query_duration_ms': 145,
                'rows_returned': 1024
            })
'''

CURSOR = '''
from datadog_checks.base import AgentCheck
import time

class CursorCheck(AgentCheck):
    def check(self, instance):
        with open(instance['times_file'], 'a') as f:
            f.write('%f\\n' % time.time())
        logs, cursors = int(instance['logs']), int(instance['cursors'])
        every = max(1, logs // cursors)
        for i in range(logs):
            cur = {'n': i} if (i % every) == every - 1 else None
            self.send_log({'message': 'cursor bench %d' % i}, cursor=cur)
'''


def build():
    env = dict(os.environ, CARGO_TARGET_DIR=TARGET)
    subprocess.run(['cargo', 'build', '--release', '-q', '-p', 'cairn'], cwd=ROOT, env=env, check=True)
    subprocess.run(['cargo', 'build', '--release', '-q', '-p', 'cairn-logs', '--example', 'count_sink'],
                   cwd=ROOT, env=env, check=True)


def config(tmp, name, src, instance, logs_extra=''):
    os.makedirs(os.path.join(tmp, 'conf.d', name + '.d'))
    os.makedirs(os.path.join(tmp, 'checks.d'), exist_ok=True)
    with open(os.path.join(tmp, 'datadog.yaml'), 'w') as f:
        f.write('logs_enabled: true\napi_key: benchkey\nhostname: bench-host\nlog_level: warn\n'
                'logs_config:\n  logs_dd_url: http://127.0.0.1:%d\n  batch_wait: 1\n%s' % (PORT, logs_extra))
    with open(os.path.join(tmp, 'conf.d', name + '.d', 'conf.yaml'), 'w') as f:
        f.write('init_config:\ninstances:\n  - min_collection_interval: 0.001\n%s\n'
                'logs:\n  - type: integration\n    source: bench\n    service: bench\n' % instance)
    with open(os.path.join(tmp, 'checks.d', name + '.py'), 'w') as f:
        f.write(src)


def proc_cpu(pid):
    with open('/proc/%d/stat' % pid) as f:
        parts = f.read().rsplit(')', 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf('SC_CLK_TCK')


def proc_hwm_mib(pid):
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) / 1024
    return 0.0


def counters(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def run_agent(tmp, extra_args, key):
    cfile = os.path.join(tmp, 'counters.json')
    cmd = [os.path.join(TARGET, 'release', 'cairn'), '-c', tmp, 'run', '--counters-file', cfile] + extra_args
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, 'agent.log'), 'w'),
                         env=dict(os.environ, CAIRN_LOG='warn'))
    time.sleep(WARMUP)
    c0, t0, k0 = proc_cpu(p.pid), time.time(), counters(cfile)
    time.sleep(SECS)
    c1, t1, k1 = proc_cpu(p.pid), time.time(), counters(cfile)
    hwm = proc_hwm_mib(p.pid)
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=60)
    n = k1.get(key, 0) - k0.get(key, 0)
    # Counters are written each second: scale by their own clock rather than ours.
    dt = t1 - t0
    return {
        'logs_per_s': n / dt,
        'bytes_per_s': (k1.get('bytes_sent', 0) - k0.get('bytes_sent', 0)) / dt,
        'wire_bytes_per_s': (k1.get('encoded_bytes_sent', 0) - k0.get('encoded_bytes_sent', 0)) / dt,
        'cpu_per_m': (c1 - c0) / (n / 1e6) if n else float('nan'),
        'cpu_util': (c1 - c0) / dt,
        'rss_mib': hwm,
        'backlog': k1.get('buffer_records', 0),
    }


def throughput():
    sink = subprocess.Popen([os.path.join(TARGET, 'release', 'examples', 'count_sink'), '127.0.0.1:%d' % PORT],
                            stdout=subprocess.DEVNULL)
    time.sleep(0.5)
    rows = []
    try:
        for label, extra_args, logs_extra, key in [
            ('hand-off only (--discard-logs, reference)', ['--discard-logs'], '', 'logs_processed'),
            ('zstd level 1, durable buffer', [], '  compression_kind: zstd\n', 'logs_sent'),
            ('gzip level 6, durable buffer', [], '  compression_kind: gzip\n', 'logs_sent'),
        ]:
            tmp = tempfile.mkdtemp(prefix='cairn-bench-')
            try:
                config(tmp, 'structured', STRUCTURED, '    per_run: 100000', logs_extra)
                rows.append((label, run_agent(tmp, extra_args, key)))
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    finally:
        sink.terminate()
    ref = rows[0][1]['logs_per_s']
    print('\n## End-to-end throughput (%.0f s after %.0f s warm-up, seed structured log)\n' % (SECS, WARMUP))
    print('| path | logs/s | MB/s (uncompressed) | MB/s on the wire | CPU-s per million logs | CPU cores busy | peak RSS MiB | vs hand-off | backlog at end |')
    print('|---|---|---|---|---|---|---|---|---|')
    for label, r in rows:
        print('| %s | %.0f | %.1f | %.2f | %.2f | %.2f | %.1f | %.2f | %d |' % (
            label, r['logs_per_s'], r['bytes_per_s'] / 1e6, r['wire_bytes_per_s'] / 1e6, r['cpu_per_m'],
            r['cpu_util'], r['rss_mib'], r['logs_per_s'] / ref if ref else 0, r['backlog']))


def cursor_cost():
    print('\n## Cursor cost (check-run period: run start to next run start, commit included)\n')
    print('| run | median ms | p90 ms |')
    print('|---|---|---|')
    sink = subprocess.Popen([os.path.join(TARGET, 'release', 'examples', 'count_sink'), '127.0.0.1:%d' % PORT],
                            stdout=subprocess.DEVNULL)
    time.sleep(0.5)
    try:
        for label, logs, cursors in [('1 log, 1 cursor update', 1, 1),
                                     ('10,000 logs, 1 cursor update', 10000, 1),
                                     ('10,000 logs, 10,000 cursor updates', 10000, 10000)]:
            tmp = tempfile.mkdtemp(prefix='cairn-bench-')
            try:
                times = os.path.join(tmp, 'times.txt')
                config(tmp, 'cursorbench', CURSOR,
                       "    times_file: '%s'\n    logs: %d\n    cursors: %d" % (times, logs, cursors))
                p = subprocess.Popen([os.path.join(TARGET, 'release', 'cairn'), '-c', tmp, 'run'],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(min(SECS, 10))
                p.send_signal(signal.SIGTERM)
                p.wait(timeout=60)
                with open(times) as f:
                    ts = [float(x) for x in f.read().split()]
                periods = sorted((b - a) * 1000 for a, b in zip(ts[2:], ts[3:]))
                print('| %s | %.2f | %.2f |' % (label, statistics.median(periods), periods[int(len(periods) * 0.9)]))
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    finally:
        sink.terminate()


if __name__ == '__main__':
    build()
    print('machine: %d cores; %s' % (os.cpu_count(), open('/proc/cpuinfo').read().split('model name')[1].split('\n')[0].strip(': ')))
    throughput()
    cursor_cost()
