#!/usr/bin/env python3
"""Idle footprint (issue 10): the quickstart (three checks) plus 20 instances of a trivial check
(`self.gauge('x', 1)`, min_collection_interval 15) under `cairn run` with the embedded intake
and the local API on free ports. After a warm-up, VmRSS (from /proc/<pid>/status) is sampled
every second over the window (max and final; VmHWM too) and CPU is utime+stime (from
/proc/<pid>/stat, all threads) over the window, as % of one core. Per thread (by name), from
/proc/<pid>/task/*/schedstat: run time in ns (finer than the 10 ms ticks) and time slices,
about one per wake-up, over the window.

Reference in the same run, over the same window: `python3.11 -c 'import time;
time.sleep(N)'` (an idle CPython, the interpreter the agent embeds) and `sleep N`.

Usage: python3 bench/agent/idle.py [--secs 300] [--warmup 30] [--target DIR] [--no-build]
                                   [--json-out FILE]
"""
import json, os, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common

ap = common.argparser(__doc__)
ap.add_argument('--secs', type=float, default=300.0)
ap.add_argument('--warmup', type=float, default=30.0)
ARGS = ap.parse_args()


def threads(pid):
    """Per thread name: [stat ticks, schedstat run ns, schedstat timeslices (~ wake-ups)]."""
    out = {}
    for tid in os.listdir('/proc/%d/task' % pid):
        base = '/proc/%d/task/%s/' % (pid, tid)
        try:
            with open(base + 'comm') as f:
                comm = f.read().strip()
            ticks = common.proc_ticks_path(base + 'stat')
            with open(base + 'schedstat') as f:
                run_ns, _, slices = (int(x) for x in f.read().split())
        except OSError:
            continue
        acc = out.setdefault(comm, [0, 0, 0])
        acc[0] += ticks
        acc[1] += run_ns
        acc[2] += slices
    return out


def main():
    common.build(ARGS.no_build)
    binary = common.cairn_bin(ARGS.target)
    cfg, cmd_port, intake_port = common.make_config(
        quickstart=True, checks={'trivial': (common.TRIVIAL, common.trivial_instances(20, 15))})
    agent = common.Agent(binary, cfg)
    agent.wait_line('cairn started')
    total = ARGS.warmup + ARGS.secs + 5
    refs = {
        'python3.11 time.sleep': subprocess.Popen(
            ['/usr/bin/python3.11', '-c', 'import time; time.sleep(%d)' % total]),
        'sleep': subprocess.Popen(['sleep', str(int(total))]),
    }
    time.sleep(ARGS.warmup)
    pids = {'cairn run': agent.pid, **{k: p.pid for k, p in refs.items()}}
    t0 = time.monotonic()
    ticks0 = {k: common.proc_ticks(p) for k, p in pids.items()}
    threads0 = threads(agent.pid)
    rss = {k: [] for k in pids}
    while time.monotonic() - t0 < ARGS.secs:
        for k, p in pids.items():
            rss[k].append(common.proc_status_kib(p, 'VmRSS'))
        time.sleep(1.0)
    wall = time.monotonic() - t0
    ticks1 = {k: common.proc_ticks(p) for k, p in pids.items()}
    threads1 = threads(agent.pid)
    for k, p in pids.items():
        rss[k].append(common.proc_status_kib(p, 'VmRSS'))
    res = {'machine': common.machine(), 'window_secs': wall, 'warmup_secs': ARGS.warmup,
           'threads': common.proc_status_kib(agent.pid, 'Threads'), 'procs': {}}
    for k, p in pids.items():
        res['procs'][k] = {
            'rss_max_mib': max(rss[k]) / 1024, 'rss_final_mib': rss[k][-1] / 1024,
            'rss_min_mib': min(rss[k]) / 1024,
            'hwm_mib': common.proc_status_kib(p, 'VmHWM') / 1024,
            'cpu_pct': 100.0 * (ticks1[k] - ticks0[k]) / common.CLK_TCK / wall,
            'cpu_ticks': ticks1[k] - ticks0[k]}
    # Threads alive at both ends of the window (one that ended in it counts only in the total).
    res['threads_in_window'] = {}
    for k, (t1, ns1, sl1) in sorted(threads1.items()):
        t0_, ns0, sl0 = threads0.get(k, (0, 0, 0))
        res['threads_in_window'][k] = {'ticks': t1 - t0_, 'cpu_pct': (ns1 - ns0) / 1e7 / wall,
                                       'wakeups_per_s': (sl1 - sl0) / wall}
    res['threads_cpu_pct_sum'] = sum(v['cpu_pct'] for v in res['threads_in_window'].values())
    res['threads_wakeups_per_s_sum'] = sum(v['wakeups_per_s'] for v in res['threads_in_window'].values())
    # The API answered during the run (not during the window: idle means idle).
    st = subprocess.run([binary, 'status', '--json', '-c', cfg], capture_output=True, text=True)
    res['status_ok'] = st.returncode == 0
    if st.returncode == 0:
        j = json.loads(st.stdout)
        res['status_checks'] = len(j.get('checks', j.get('collector', {})) or [])
    agent.stop()
    for p in refs.values():
        p.terminate()
        p.wait()
    res['agent_stderr_warn_error'] = [l for _, l in agent.lines if ' WARN ' in l or ' ERROR ' in l][:20]
    print(json.dumps(res, indent=1))
    a = res['procs']['cairn run']
    print('\ncairn run: RSS max %.1f MiB, final %.1f MiB (VmHWM %.1f) [goal <= 40 MiB]; '
          'CPU %.3f %% of one core over %.0f s [goal <= 0.3 %%]'
          % (a['rss_max_mib'], a['rss_final_mib'], a['hwm_mib'], a['cpu_pct'], wall))
    print('threads (schedstat): %.3f %% in all, %.1f wake-ups/s'
          % (res['threads_cpu_pct_sum'], res['threads_wakeups_per_s_sum']))
    for k, v in sorted(res['threads_in_window'].items(), key=lambda kv: -kv[1]['cpu_pct']):
        print('  %-16s %.4f %%  %6.1f wake-ups/s  %d ticks' % (k, v['cpu_pct'], v['wakeups_per_s'], v['ticks']))
    for k in refs:
        r = res['procs'][k]
        print('reference %s: RSS %.1f MiB, CPU %.3f %%' % (k, r['rss_max_mib'], r['cpu_pct']))
    if ARGS.json_out:
        with open(ARGS.json_out, 'w') as f:
            json.dump(res, f, indent=1)


main()
