#!/usr/bin/env python3
"""End-to-end pipeline benchmark: a Python check emitting the seed's structured log through
`cairn run` (release build, durable buffer with its fsync policy on) into a local HTTP sink
that only counts. Prints sustained logs/s and bytes/s, CPU seconds per million logs and peak
RSS for zstd and gzip, next to a same-run reference: the same check with `--discard-logs`
(the raw hand-off rate). Then the cursor cost: check-run period with 1 and 10,000 cursor
updates per run.

With --callgrind it also counts instructions per delivered log: `cairn run` under
`valgrind --tool=callgrind` (all threads: hand-off, buffer, sender, compression) with a check
that sends --callgrind-logs seed-shaped logs in one run and then nothing, zstd, durable buffer,
into the counting sink; stopped (SIGTERM) once the sink side has them all (`logs_sent`). The
same with a 0-log check is subtracted, so start-up and shutdown cancel out. Instructions that
depend on wall time (timers, idle threads) do not cancel exactly; they are small next to
200,000 logs (the script prints the 0-log run's total). PYTHONHASHSEED is fixed (0 unless
set) under callgrind: a random str hash seed moves the count by ~1.5 % between runs.

Usage: python3 bench/pipeline/run.py [--secs 20] [--root DIR | --target DIR] [--no-build]
                                     [--only throughput,cursor,callgrind] [--callgrind]
                                     [--callgrind-logs 200000] [--callgrind-out DIR]
                                     [--callgrind-zero-wait 1.5] [--callgrind-runs N]
                                     [--json-out FILE]
  --root DIR     the tree to build and measure (default: this repository); its target dir is
                 DIR/target unless --target or CARGO_TARGET_DIR says otherwise
  --target DIR   cargo target dir whose release/cairn and release/examples/count_sink run
  --no-build     do not run cargo, use the binaries as they are
"""
import argparse, json, os, re, shutil, signal, statistics, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
ap = argparse.ArgumentParser(usage=__doc__.split('Usage: ')[1])
ap.add_argument('--secs', type=float, default=20.0)
ap.add_argument('--root', default=os.path.dirname(os.path.dirname(HERE)))
ap.add_argument('--target')
ap.add_argument('--no-build', action='store_true')
ap.add_argument('--only', default='throughput,cursor')
ap.add_argument('--callgrind', action='store_true')
ap.add_argument('--callgrind-logs', type=int, default=200_000)
ap.add_argument('--callgrind-out')
ap.add_argument('--callgrind-runs', type=int, default=0,
                help='also count instructions per check run: a 0-log check run this many times')
ap.add_argument('--callgrind-zero-wait', type=float, default=1.5,
                help='seconds the 0-log run idles after its check ran (to measure idle cost)')
ap.add_argument('--json-out')
ARGS = ap.parse_args()
ROOT = os.path.abspath(ARGS.root)
TARGET = os.path.abspath(ARGS.target or os.environ.get('CARGO_TARGET_DIR') or os.path.join(ROOT, 'target'))
SECS = ARGS.secs
WARMUP = 4.0
PORT = 18600 + os.getpid() % 1000
RESULTS = {'root': ROOT, 'target': TARGET, 'secs': SECS}

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


CALLGRIND_CHECK = '''
from datadog_checks.base import AgentCheck
import time

class FixedCheck(AgentCheck):
    def check(self, instance):
        self.runs = getattr(self, 'runs', 0) + 1
        if self.runs >= int(instance['runs']):
            open(instance['done_file'], 'w').close()
        if self.runs > 1:
            return
        send = self.send_log
        for _ in range(int(instance['logs'])):
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


def callgrind_run(logs, out_file, runs=1):
    # One `cairn run` under callgrind with a check that sends `logs` logs in its first run and
    # is stopped after `runs` runs (every 1 ms; a day apart when runs == 1). Returns
    # (instructions, logs_sent, wall seconds). `done_file` appears once the last run started:
    # the check writes it before its logs, so logs_sent is waited for too.
    tmp = tempfile.mkdtemp(prefix='cairn-bench-cg-')
    try:
        done = os.path.join(tmp, 'done')
        config(tmp, 'fixed', CALLGRIND_CHECK,
               "    logs: %d\n    runs: %d\n    done_file: '%s'" % (logs, runs, done), '  compression_kind: zstd\n')
        if runs == 1:
            # One run only: the check's interval is a day.
            conf = os.path.join(tmp, 'conf.d', 'fixed.d', 'conf.yaml')
            with open(conf) as f:
                text = f.read().replace('min_collection_interval: 0.001', 'min_collection_interval: 86400')
            with open(conf, 'w') as f:
                f.write(text)
        cfile = os.path.join(tmp, 'counters.json')
        vlog = os.path.join(tmp, 'valgrind.log')
        cmd = ['valgrind', '--tool=callgrind', '--log-file=' + vlog, '--callgrind-out-file=' + out_file,
               os.path.join(TARGET, 'release', 'cairn'), '-c', tmp, 'run', '--counters-file', cfile]
        t0 = time.time()
        # A fixed str hash seed, so that dict probing (and so the count) repeats run to run.
        env = dict(os.environ, CAIRN_LOG='warn', PYTHONHASHSEED=os.environ.get('PYTHONHASHSEED', '0'))
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, 'agent.log'), 'w'),
                             env=env)
        deadline = t0 + 900
        while time.time() < deadline:
            time.sleep(0.5)
            if p.poll() is not None:
                sys.exit('cairn under callgrind exited early: %s' % open(os.path.join(tmp, 'agent.log')).read()[-2000:])
            if os.path.exists(done) and counters(cfile).get('logs_sent', 0) >= logs:
                break
        else:
            p.kill()
            sys.exit('callgrind run did not deliver %d logs in 900 s' % logs)
        if logs == 0 and runs == 1:
            time.sleep(ARGS.callgrind_zero_wait)  # a counters write or two, as in the N-log run
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=300)
        wall = time.time() - t0
        sent = counters(cfile).get('logs_sent', 0)
        with open(vlog) as f:
            m = re.search(r'Collected : (\d+)', f.read())
        if not m:
            sys.exit('no callgrind total in %s' % vlog)
        return int(m.group(1)), sent, wall
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def callgrind_mode():
    n = ARGS.callgrind_logs
    out_dir = ARGS.callgrind_out or tempfile.mkdtemp(prefix='cairn-bench-cgout-')
    os.makedirs(out_dir, exist_ok=True)
    sink = subprocess.Popen([os.path.join(TARGET, 'release', 'examples', 'count_sink'), '127.0.0.1:%d' % PORT],
                            stdout=subprocess.DEVNULL)
    time.sleep(0.5)
    try:
        i0, s0, w0 = callgrind_run(0, os.path.join(out_dir, 'pipeline-0.out'))
        i1, s1, w1 = callgrind_run(n, os.path.join(out_dir, 'pipeline-%d.out' % n))
    finally:
        sink.terminate()
    if s1 != n:
        print('warning: %d logs delivered, expected %d' % (s1, n))
    ipl = (i1 - i0) / s1
    RESULTS['callgrind'] = {'logs': n, 'delivered': s1, 'instructions': i1, 'instructions_0_logs': i0,
                            'wall_s': w1, 'wall_s_0_logs': w0, 'instructions_per_log': ipl,
                            'profiles': out_dir}
    print('\n## Instructions per delivered log (callgrind, zstd, durable buffer, all threads)\n')
    print('| logs | delivered | instructions | 0-log run | instructions/log | wall under valgrind |')
    print('|---|---|---|---|---|---|')
    print('| %d | %d | %d | %d | %.0f | %.0f s (+ %.0f s) |' % (n, s1, i1, i0, ipl, w1, w0))
    if ARGS.callgrind_runs:
        r = ARGS.callgrind_runs
        sink = subprocess.Popen([os.path.join(TARGET, 'release', 'examples', 'count_sink'), '127.0.0.1:%d' % PORT],
                                stdout=subprocess.DEVNULL)
        time.sleep(0.5)
        try:
            ir, _, wr = callgrind_run(0, os.path.join(out_dir, 'pipeline-runs-%d.out' % r), runs=r)
        finally:
            sink.terminate()
        ipr = (ir - i0) / (r - 1)
        RESULTS['callgrind']['runs'] = {'runs': r, 'instructions': ir, 'wall_s': wr, 'instructions_per_extra_run': ipr}
        print('\nper check run (0 logs, %d runs 1 ms apart, minus the 1-run 0-log run): %.0f instructions/run '
              '(%.0f s under valgrind; includes the idle threads over that time)' % (r, ipr, wr))
    print('profiles kept in %s' % out_dir)


def build():
    if ARGS.no_build:
        return
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
    RESULTS['throughput'] = {label: r for label, r in rows}
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
    RESULTS['cursor'] = {}
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
                med, p90 = statistics.median(periods), periods[int(len(periods) * 0.9)]
                RESULTS['cursor'][label] = {'median_ms': med, 'p90_ms': p90}
                print('| %s | %.2f | %.2f |' % (label, med, p90))
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    finally:
        sink.terminate()


if __name__ == '__main__':
    build()
    print('machine: %d cores; %s; load %s' % (
        os.cpu_count(), open('/proc/cpuinfo').read().split('model name')[1].split('\n')[0].strip(' \t:'),
        ' '.join(open('/proc/loadavg').read().split()[:3])))
    print('cairn: %s' % os.path.join(TARGET, 'release', 'cairn'))
    parts = set(ARGS.only.split(','))
    if ARGS.callgrind:
        parts.add('callgrind')
    if 'throughput' in parts:
        throughput()
    if 'cursor' in parts:
        cursor_cost()
    if 'callgrind' in parts:
        callgrind_mode()
    if ARGS.json_out:
        os.makedirs(os.path.dirname(os.path.abspath(ARGS.json_out)), exist_ok=True)
        with open(ARGS.json_out, 'w') as f:
            json.dump(RESULTS, f, indent=2)
