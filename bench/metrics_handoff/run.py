#!/usr/bin/env python3
"""Metrics hand-off benchmark (issue 9). Measures, in one run and interleaved:

  (g) cairn check, bundled base: one run submitting N gauges over C contexts;
  (m) the same with the mixed load (40 % gauge, 20 % count, 20 % monotonic_count,
      20 % histogram);
  (s) the send_log hand-off of bench/handoff (N seed-shaped logs), the reference the issue
      names;
  (f) the floor: the same loops under plain python3 calling no-op methods.

Prints µs per call, the ratios g/f (goal <= 3, like send_log) and s/f, and the heap a live
context costs: peak RSS of `cairn check` with 100,000 contexts minus that with 10,000, over
the 90,000 contexts between (both submit N gauges).

With --callgrind it also counts instructions per call of (g), (m) and (f) under valgrind
(N=100,000 minus an N=0 run, so start-up cancels out).

Usage: python3 bench/metrics_handoff/run.py [--samples 1000000] [--contexts 10000]
                                            [--repeat 3] [--callgrind] [--cairn PATH]
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
sys.path.insert(0, os.path.join(ROOT, 'bench', 'handoff'))
import run as handoff  # noqa: E402

PY = '/usr/bin/python3.11'


def write_config(work, n, contexts, mode):
    cfg = os.path.join(work, 'metrics-cfg')
    os.makedirs(os.path.join(cfg, 'conf.d', 'metrics.d'), exist_ok=True)
    os.makedirs(os.path.join(cfg, 'checks.d'), exist_ok=True)
    with open(os.path.join(cfg, 'datadog.yaml'), 'w') as f:
        f.write('hostname: bench\n')
    result = os.path.join(work, 'g.json')
    with open(os.path.join(cfg, 'conf.d', 'metrics.d', 'conf.yaml'), 'w') as f:
        f.write('instances:\n'
                f'  - samples: {n}\n    contexts: {contexts}\n    mode: {mode}\n    result_file: {result}\n')
    with open(os.path.join(HERE, 'metrics_check.py')) as src, open(os.path.join(cfg, 'checks.d', 'metrics.py'), 'w') as dst:
        dst.write(src.read())
    return cfg, result


def cairn_cmd(cairn, cfg):
    return [cairn, '-c', cfg, 'check', 'metrics', '--format', 'summary']


def run_cairn(cairn, work, n, contexts, mode):
    cfg, result = write_config(work, n, contexts, mode)
    p = subprocess.run(['/usr/bin/time', '-v', *cairn_cmd(cairn, cfg)], capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f'cairn check failed:\n{p.stdout}\n{p.stderr}')
    got = int(re.search(r'metrics=(\d+)', p.stdout).group(1))
    assert got == n, f'cairn took {got} samples, expected {n}'
    rss_kib = int(re.search(r'Maximum resident set size \(kbytes\): (\d+)', p.stderr).group(1))
    with open(result) as f:
        r = json.load(f)
    return r['seconds'] / n * 1e6, rss_kib * 1024


def run_floor(work, n, contexts, mode):
    out = os.path.join(work, 'f.json')
    subprocess.run([PY, os.path.join(HERE, 'floor.py'), str(n), str(contexts), mode, out], check=True)
    with open(out) as f:
        r = json.load(f)
    return r['seconds'] / n * 1e6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--samples', type=int, default=1_000_000)
    ap.add_argument('--contexts', type=int, default=10_000)
    ap.add_argument('--repeat', type=int, default=3)
    ap.add_argument('--callgrind', action='store_true')
    ap.add_argument('--cairn')
    ap.add_argument('--json-out', default=os.path.join(ROOT, 'target', 'bench', 'metrics_handoff.json'))
    args = ap.parse_args()
    cairn = os.path.abspath(args.cairn) if args.cairn else handoff.ensure_cairn()
    n, c = args.samples, args.contexts
    g, m, s, fg, fm = [], [], [], [], []
    with tempfile.TemporaryDirectory() as work:
        for _ in range(args.repeat):
            g.append(run_cairn(cairn, work, n, c, 'gauge')[0])
            m.append(run_cairn(cairn, work, n, c, 'mixed')[0])
            s.append(handoff.run_cairn(cairn, n, work)[0])
            fg.append(run_floor(work, n, c, 'gauge'))
            fm.append(run_floor(work, n, c, 'mixed'))
        _, rss_small = run_cairn(cairn, work, n, 10_000, 'gauge')
        _, rss_big = run_cairn(cairn, work, n, 100_000, 'gauge')
        per_context = (rss_big - rss_small) / 90_000
        ipc = None
        if args.callgrind:
            ipc = {}
            for mode in ('gauge', 'mixed'):
                cfg_n, _ = write_config(work, 100_000, c, mode)
                big = handoff.callgrind(cairn_cmd(cairn, cfg_n))
                cfg_0, _ = write_config(work, 0, c, mode)
                small = handoff.callgrind(cairn_cmd(cairn, cfg_0))
                ipc[mode] = (big - small) / 100_000
                out = os.path.join(work, 'f.json')
                fbig = handoff.callgrind([PY, os.path.join(HERE, 'floor.py'), '100000', str(c), mode, out])
                fsmall = handoff.callgrind([PY, os.path.join(HERE, 'floor.py'), '0', str(c), mode, out])
                ipc['floor_' + mode] = (fbig - fsmall) / 100_000
    med = statistics.median
    res = {
        'cairn': cairn, 'samples_per_run': n, 'contexts': c, 'repeats': args.repeat,
        'us_per_call': {'gauge': med(g), 'mixed': med(m), 'send_log': med(s),
                        'floor_gauge': med(fg), 'floor_mixed': med(fm)},
        'ratio_gauge_over_floor': med(g) / med(fg),
        'ratio_mixed_over_floor': med(m) / med(fm),
        'ratio_send_log_over_floor': med(s) / med(fg),
        'rss_bytes_per_live_context': per_context,
        'rss_mib': {'10k_contexts': rss_small / 2**20, '100k_contexts': rss_big / 2**20},
        'instructions_per_call': ipc,
        'samples': {'g': g, 'm': m, 's': s, 'fg': fg, 'fm': fm},
    }
    os.makedirs(os.path.dirname(args.json_out), exist_ok=True)
    with open(args.json_out, 'w') as f:
        json.dump(res, f, indent=2)
    print(f'cairn: {cairn}; {n:,} samples per run over {c:,} contexts, median of {args.repeat}')
    print(f'(g) gauge            {med(g):6.3f} us/call   floor {med(fg):6.3f}   g/f = {med(g) / med(fg):.2f}x (goal <= 3)')
    print(f'(m) mixed            {med(m):6.3f} us/call   floor {med(fm):6.3f}   m/f = {med(m) / med(fm):.2f}x')
    print(f'(s) send_log         {med(s):6.3f} us/log    s/f = {med(s) / med(fg):.2f}x')
    print(f'RSS per live context: {per_context:.0f} bytes (peak {rss_small / 2**20:.1f} MiB at 10k, {rss_big / 2**20:.1f} MiB at 100k)')
    if ipc:
        print(f"instructions/call: gauge {ipc['gauge']:.0f} (floor {ipc['floor_gauge']:.0f}, {ipc['gauge'] / ipc['floor_gauge']:.2f}x)  "
              f"mixed {ipc['mixed']:.0f} (floor {ipc['floor_mixed']:.0f}, {ipc['mixed'] / ipc['floor_mixed']:.2f}x)")


if __name__ == '__main__':
    main()
