#!/usr/bin/env python3
"""Idle footprint (issue 10): the quickstart (three checks) plus 20 instances of a trivial check
(`self.gauge('x', 1)`, min_collection_interval 15) under `cairn run` with the embedded intake
and the local API on free ports. After a warm-up, VmRSS (from /proc/<pid>/status) is sampled
every second over the window (max and final; VmHWM too) and CPU is utime+stime (from
/proc/<pid>/stat, all threads) over the window, as % of one core. Per-thread CPU at the end
says which threads spent it.

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


def thread_ticks(pid):
    out = {}
    for tid in os.listdir('/proc/%d/task' % pid):
        try:
            with open('/proc/%d/task/%s/comm' % (pid, tid)) as f:
                comm = f.read().strip()
            ticks = common.proc_ticks_path('/proc/%d/task/%s/stat' % (pid, tid))
        except OSError:
            continue
        out[comm] = out.get(comm, 0) + ticks
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
    threads0 = thread_ticks(agent.pid)
    rss = {k: [] for k in pids}
    while time.monotonic() - t0 < ARGS.secs:
        for k, p in pids.items():
            rss[k].append(common.proc_status_kib(p, 'VmRSS'))
        time.sleep(1.0)
    wall = time.monotonic() - t0
    ticks1 = {k: common.proc_ticks(p) for k, p in pids.items()}
    threads1 = thread_ticks(agent.pid)
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
    res['thread_ticks'] = {k: v - threads0.get(k, 0) for k, v in sorted(threads1.items())
                           if v - threads0.get(k, 0) > 0}
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
    for k in refs:
        r = res['procs'][k]
        print('reference %s: RSS %.1f MiB, CPU %.3f %%' % (k, r['rss_max_mib'], r['cpu_pct']))
    if ARGS.json_out:
        with open(ARGS.json_out, 'w') as f:
            json.dump(res, f, indent=1)


main()
