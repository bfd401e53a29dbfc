#!/usr/bin/env python3
"""send_log hand-off benchmark (issue 2). Measures, in one run and interleaved:

  (a) cairn check with the bundled base: one run that sends N seed-shaped logs;
  (b) the same check under plain python3 with the real datadog-checks-base send_log path
      (copy + tags + JSON encode) and a no-op host function;
  (c) the floor: the same loop calling a no-op Python function.

All three use Debian's python3.11, the interpreter cairn embeds. Prints µs/log, the ratios
b/a (goal >= 3) and a/c (goal <= 3), and the peak RSS of the cairn process.

With --callgrind it also counts instructions per log for (a), (b) and (c) under valgrind
(N=100,000 minus an N=0 run, so interpreter start-up cancels out): slower, but repeatable on a
noisy machine where wall-clock ratios wander.

Usage: python3 bench/handoff/run.py [--logs 1000000] [--repeat 3] [--callgrind]
                                    [--cairn PATH] [--venv DIR] [--callgrind-out DIR]
                                    [--callgrind-only]

--cairn runs a given cairn binary (e.g. another worktree's release build) instead of building
this tree's; --venv puts the real-library venv elsewhere; --callgrind-out keeps the callgrind
profiles of the N-log runs (a.out, b.out, c.out) for callgrind_annotate; --callgrind-only skips
the wall-clock runs. Callgrind runs use PYTHONHASHSEED=0 (unless set): str hashes decide dict
probing, and a random seed moves the Python-heavy counts by up to ~4 % between runs.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PY = '/usr/bin/python3.11'
VENV = os.path.join(ROOT, 'target', 'bench-venv')
PACKAGES = ['datadog-checks-base==38.7.0', 'lazy-loader', 'pyyaml', 'cachetools']


def ensure_venv():
    marker = os.path.join(VENV, '.installed')
    if not os.path.exists(marker):
        subprocess.run([PY, '-m', 'venv', VENV], check=True)
        subprocess.run([os.path.join(VENV, 'bin', 'pip'), 'install', '-q', '--disable-pip-version-check', *PACKAGES], check=True)
        open(marker, 'w').close()
    return os.path.join(VENV, 'bin', 'python')


def ensure_cairn():
    subprocess.run(['cargo', 'build', '--release', '-q', '-p', 'cairn'], cwd=ROOT, check=True)
    return os.path.join(ROOT, 'target', 'release', 'cairn')


def read_result(path):
    with open(path) as f:
        r = json.load(f)
    return r['seconds'] / r['logs'] * 1e6


def callgrind(cmd, out_file='/dev/null'):
    """Instructions executed by `cmd` (valgrind's callgrind, no cache simulation)."""
    # A fixed str hash seed: with a random one, dict probing differs run to run and moves the
    # count of the Python-heavy paths by a few percent.
    env = dict(os.environ, PYTHONHASHSEED=os.environ.get('PYTHONHASHSEED', '0'))
    p = subprocess.run(['valgrind', '--tool=callgrind', f'--callgrind-out-file={out_file}', *cmd], capture_output=True, text=True, env=env)
    if p.returncode != 0:
        sys.exit(f'valgrind failed: {p.stderr[-2000:]}')
    return int(re.search(r'Collected : (\d+)', p.stderr).group(1))


def instructions_per_log(cairn, venv_py, work, n=100_000, out_dir=None):
    def cairn_cmd(k):
        cfg = write_cairn_config(k, work)
        return [cairn, '-c', cfg, 'check', 'handoff', '--format', 'summary']

    def real_cmd(k):
        return [venv_py, os.path.join(HERE, 'real_library.py'), str(k), os.path.join(work, 'b.json'), os.path.join(HERE, 'handoff_check.py')]

    def floor_cmd(k):
        return [PY, os.path.join(HERE, 'floor.py'), str(k), os.path.join(work, 'c.json')]

    out = {}
    for name, build in (('a', cairn_cmd), ('b', real_cmd), ('c', floor_cmd)):
        keep = os.path.join(out_dir, f'{name}.out') if out_dir else '/dev/null'
        out[name] = (callgrind(build(n), keep) - callgrind(build(0))) / n
    return out


def write_cairn_config(n, work):
    cfg = os.path.join(work, 'cairn')
    os.makedirs(os.path.join(cfg, 'conf.d', 'handoff.d'), exist_ok=True)
    os.makedirs(os.path.join(cfg, 'checks.d'), exist_ok=True)
    with open(os.path.join(cfg, 'datadog.yaml'), 'w') as f:
        f.write('logs_enabled: true\nhostname: bench\n')
    result = os.path.join(work, 'a.json')
    with open(os.path.join(cfg, 'conf.d', 'handoff.d', 'conf.yaml'), 'w') as f:
        f.write(
            'instances:\n'
            f'  - logs: {n}\n    result_file: {result}\n    tags: ["env:bench"]\n'
            'logs:\n  - type: integration\n    source: handoff\n    service: bench\n'
        )
    with open(os.path.join(HERE, 'handoff_check.py')) as src, open(os.path.join(cfg, 'checks.d', 'handoff.py'), 'w') as dst:
        dst.write(src.read())
    return cfg


def run_cairn(cairn, n, work):
    cfg = write_cairn_config(n, work)
    result = os.path.join(work, 'a.json')
    p = subprocess.run(
        ['/usr/bin/time', '-v', cairn, '-c', cfg, 'check', 'handoff', '--format', 'summary'],
        capture_output=True, text=True,
    )
    if p.returncode != 0:
        sys.exit(f'cairn check failed:\n{p.stdout}\n{p.stderr}')
    rss_kib = int(re.search(r'Maximum resident set size \(kbytes\): (\d+)', p.stderr).group(1))
    logs = int(re.search(r'logs=(\d+)', p.stdout).group(1))
    assert logs == n, f'cairn staged {logs} logs, expected {n}'
    return read_result(result), rss_kib / 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--logs', type=int, default=1_000_000)
    ap.add_argument('--repeat', type=int, default=3)
    ap.add_argument('--callgrind', action='store_true')
    ap.add_argument('--json-out', default=os.path.join(ROOT, 'target', 'bench', 'handoff.json'))
    ap.add_argument('--cairn', help='cairn binary to measure (default: build this tree and use its release binary)')
    ap.add_argument('--venv', help='where the real-library venv lives (default: target/bench-venv)')
    ap.add_argument('--callgrind-out', help='directory to keep the callgrind profiles of the N-log runs in')
    ap.add_argument('--callgrind-only', action='store_true', help='skip the wall-clock runs (implies --callgrind)')
    args = ap.parse_args()
    global VENV
    if args.venv:
        VENV = os.path.abspath(args.venv)
    venv_py = ensure_venv()
    cairn = os.path.abspath(args.cairn) if args.cairn else ensure_cairn()
    if args.callgrind_out:
        os.makedirs(args.callgrind_out, exist_ok=True)
    if args.callgrind_only:
        args.callgrind, args.repeat = True, 0
    a, b, c, rss = [], [], [], []
    with tempfile.TemporaryDirectory() as work:
        for _ in range(args.repeat):
            us, mib = run_cairn(cairn, args.logs, work)
            a.append(us)
            rss.append(mib)
            out = os.path.join(work, 'b.json')
            subprocess.run([venv_py, os.path.join(HERE, 'real_library.py'), str(args.logs), out, os.path.join(HERE, 'handoff_check.py')], check=True)
            b.append(read_result(out))
            out = os.path.join(work, 'c.json')
            subprocess.run([PY, os.path.join(HERE, 'floor.py'), str(args.logs), out], check=True)
            c.append(read_result(out))
        ipl = instructions_per_log(cairn, venv_py, work, out_dir=args.callgrind_out) if args.callgrind else None
    if args.callgrind_only:
        a, b, c, rss = [float('nan')], [float('nan')], [float('nan')], [float('nan')]
    ma, mb, mc = statistics.median(a), statistics.median(b), statistics.median(c)
    res = {
        'cairn': cairn,
        'logs_per_run': args.logs,
        'repeats': args.repeat,
        'us_per_log': {'a_cairn_bundled': ma, 'b_real_library_json_noop_host': mb, 'c_floor_noop_function': mc},
        'ratio_b_over_a': mb / ma,
        'ratio_a_over_c': ma / mc,
        'cairn_peak_rss_mib': max(rss),
        'samples': {'a': a, 'b': b, 'c': c, 'rss_mib': rss},
        'instructions_per_log': ipl,
    }
    os.makedirs(os.path.dirname(args.json_out), exist_ok=True)
    with open(args.json_out, 'w') as f:
        json.dump(res, f, indent=2)
    print(f'cairn: {cairn}')
    print(f'logs per run: {args.logs:,}, median of {args.repeat}')
    print(f'(a) cairn, bundled base        {ma:6.3f} us/log')
    print(f'(b) real library, no-op host   {mb:6.3f} us/log')
    print(f'(c) floor, no-op function      {mc:6.3f} us/log')
    print(f'b/a = {mb / ma:.2f}x (goal >= 3)   a/c = {ma / mc:.2f}x (goal <= 3)')
    print(f'cairn check peak RSS: {max(rss):.1f} MiB')
    if ipl:
        print(f"instructions/log: (a) {ipl['a']:.0f}  (b) {ipl['b']:.0f}  (c) {ipl['c']:.0f}   "
              f"b/a = {ipl['b'] / ipl['a']:.2f}x   a/c = {ipl['a'] / ipl['c']:.2f}x")


if __name__ == '__main__':
    main()
