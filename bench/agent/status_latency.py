#!/usr/bin/env python3
"""`cairn status` latency with 500 instances loaded (issue 10): one conf.d file with 500
instances of a trivial check (`self.gauge('x', 1)`), each with its own `name` and tag, at
min_collection_interval 15, under `cairn run` (embedded intake, local API on a free port).
Once every instance has run at least once, interleaved, --runs times each:

- `cairn status --json -c DIR`, end to end (spawn to exit, output read);
- the raw `GET /status` with curl and the token (`-w %{time_total}`: the server-side share
  plus one loopback connection), and curl's own spawn-to-exit;
- `cairn status -c DIR` (the text rendering), end to end;
- reference: `cairn --version`, spawn to exit (process start of the same binary).

Usage: python3 bench/agent/status_latency.py [--instances 500] [--runs 50] [--target DIR]
                                             [--no-build] [--json-out FILE]
"""
import json, os, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common

ap = common.argparser(__doc__)
ap.add_argument('--instances', type=int, default=500)
ap.add_argument('--runs', type=int, default=50)
ARGS = ap.parse_args()


def timed(cmd):
    t = time.perf_counter()
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    dt = time.perf_counter() - t
    if out.returncode != 0:
        sys.exit('%s failed: %s' % (cmd, out.stderr.decode()))
    return dt * 1000, out.stdout


def total_runs(status):
    """Instances that have run at least once, from the /status JSON (whatever its layout:
    every object with a numeric `total_runs`)."""
    found = []

    def walk(v):
        if isinstance(v, dict):
            if isinstance(v.get('total_runs'), int):
                found.append(v['total_runs'])
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
    walk(status)
    return found


def main():
    common.build(ARGS.no_build)
    binary = common.cairn_bin(ARGS.target)
    cfg, cmd_port, _ = common.make_config(
        checks={'trivial': (common.TRIVIAL, common.trivial_instances(ARGS.instances, 15))})
    agent = common.Agent(binary, cfg)
    agent.wait_line('cairn started')
    status_cmd = [binary, 'status', '--json', '-c', cfg]
    deadline = time.time() + 60
    while True:
        _, out = timed(status_cmd)
        runs = total_runs(json.loads(out))
        if len(runs) >= ARGS.instances and min(runs) >= 1:
            break
        if time.time() > deadline:
            sys.exit('not every instance ran within 60 s: %d entries, %d with runs'
                     % (len(runs), sum(1 for r in runs if r >= 1)))
        time.sleep(0.5)
    token = agent.token()
    url = 'http://localhost:%d/status' % cmd_port
    curl_cmd = ['curl', '-sS', '-o', '/dev/null', '-H', 'Authorization: Bearer ' + token,
                '-w', '%{http_code} %{time_total}', url]
    # A few unmeasured rounds first (page cache, the API's first connection).
    for _ in range(3):
        timed(status_cmd), timed(curl_cmd), timed([binary, '--version'])
    res = {k: [] for k in ('status_json_ms', 'status_text_ms', 'curl_time_total_ms', 'curl_process_ms', 'version_ms')}
    for _ in range(ARGS.runs):
        ms, out = timed(status_cmd)
        res['status_json_ms'].append(ms)
        status_bytes = len(out)
        res['status_text_ms'].append(timed([binary, 'status', '-c', cfg])[0])
        ms, out = timed(curl_cmd)
        code, total = out.decode().split()
        if code != '200':
            sys.exit('GET /status: HTTP %s' % code)
        res['curl_process_ms'].append(ms)
        res['curl_time_total_ms'].append(float(total) * 1000)
        res['version_ms'].append(timed([binary, '--version'])[0])
    rss = common.proc_status_kib(agent.pid, 'VmRSS') / 1024
    agent.stop()
    report = {'machine': common.machine(), 'instances': ARGS.instances, 'runs': ARGS.runs,
              'status_json_bytes': status_bytes, 'agent_rss_mib': rss,
              'results': {k: common.summary(v) for k, v in res.items()}, 'raw': res}
    print(json.dumps({k: v for k, v in report.items() if k != 'raw'}, indent=1))
    s = report['results']
    print('\ncairn status --json (%d instances, %d KiB): p50 %.1f ms, p95 %.1f ms [goal <= 50 ms]'
          % (ARGS.instances, status_bytes // 1024, s['status_json_ms']['p50'], s['status_json_ms']['p95']))
    print('cairn status (text): p50 %.1f ms, p95 %.1f ms'
          % (s['status_text_ms']['p50'], s['status_text_ms']['p95']))
    print('GET /status (curl time_total): p50 %.1f ms, p95 %.1f ms; curl spawn-to-exit p50 %.1f ms'
          % (s['curl_time_total_ms']['p50'], s['curl_time_total_ms']['p95'], s['curl_process_ms']['p50']))
    print('reference cairn --version: p50 %.1f ms, p95 %.1f ms'
          % (s['version_ms']['p50'], s['version_ms']['p95']))
    if ARGS.json_out:
        with open(ARGS.json_out, 'w') as f:
            json.dump(report, f, indent=1)


main()
