"""Shared by the issue 10 agent benchmarks (idle.py, status_latency.py, first_log.py): a temp
config dir (optionally the quickstart) with free ports for the local API and the embedded
intake, a trivial check, `cairn run` started with its stderr lines time-stamped, and
/proc readings."""
import argparse, os, shutil, signal, socket, statistics, subprocess, sys, tempfile, threading, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CLK_TCK = os.sysconf('SC_CLK_TCK')

TRIVIAL = '''from datadog_checks.base import AgentCheck


class TrivialCheck(AgentCheck):
    def check(self, instance):
        self.gauge('x', 1)
'''


def argparser(doc):
    """The scripts' common options: --target, --no-build, --json-out."""
    ap = argparse.ArgumentParser(usage=doc.split('Usage: ')[1])
    ap.add_argument('--target', help='cargo target dir whose release/cairn runs')
    ap.add_argument('--no-build', action='store_true', help='do not run cargo')
    ap.add_argument('--json-out')
    return ap


def cairn_bin(target=None):
    target = target or os.environ.get('CARGO_TARGET_DIR') or os.path.join(ROOT, 'target')
    return os.path.join(os.path.abspath(target), 'release', 'cairn')


def build(no_build):
    if not no_build:
        subprocess.run(['cargo', 'build', '--release', '-p', 'cairn'], cwd=ROOT, check=True)


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def trivial_instances(n, interval=15):
    lines = ['init_config:', '', 'instances:']
    for i in range(n):
        lines += ['  - min_collection_interval: %s' % interval,
                  '    name: trivial-%d' % i, '    tags: ["n:%d"]' % i]
    return '\n'.join(lines) + '\n'


def make_config(quickstart=False, datadog_extra='', checks=None):
    """A temp config dir; checks = {name: (python source, conf.yaml text)}. Returns
    (dir, cmd_port, intake_port)."""
    tmp = tempfile.mkdtemp(prefix='cairn-bench10-')
    cfg = os.path.join(tmp, 'cfg')
    if quickstart:
        shutil.copytree(os.path.join(ROOT, 'examples', 'quickstart'), cfg)
        os.remove(os.path.join(cfg, 'datadog.yaml'))
    else:
        os.makedirs(os.path.join(cfg, 'checks.d'))
        os.makedirs(os.path.join(cfg, 'conf.d'))
    cmd_port, intake_port = free_port(), free_port()
    with open(os.path.join(cfg, 'datadog.yaml'), 'w') as f:
        f.write('logs_enabled: true\ncmd_host: localhost\ncmd_port: %d\n' % cmd_port)
        if quickstart:
            f.write('check_runners: 4\n')
        f.write('logs_config:\n  intake:\n    listen: 127.0.0.1:%d\n' % intake_port)
        f.write(datadog_extra)
    for name, (src, conf) in (checks or {}).items():
        with open(os.path.join(cfg, 'checks.d', name + '.py'), 'w') as f:
            f.write(src)
        os.makedirs(os.path.join(cfg, 'conf.d', name + '.d'), exist_ok=True)
        with open(os.path.join(cfg, 'conf.d', name + '.d', 'conf.yaml'), 'w') as f:
            f.write(conf)
    return cfg, cmd_port, intake_port


class Agent:
    """`cairn run -c cfg`; stderr lines collected with their arrival time (perf_counter)."""

    def __init__(self, binary, cfg):
        self.cfg = cfg
        self.lines = []
        self.t_spawn = time.perf_counter()
        self.proc = subprocess.Popen([binary, 'run', '-c', cfg], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, cwd=cfg)
        self.pid = self.proc.pid
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for raw in self.proc.stderr:
            self.lines.append((time.perf_counter(), raw.decode('utf-8', 'replace').rstrip()))

    def line_time(self, needle):
        for t, line in list(self.lines):
            if needle in line:
                return t
        return None

    def wait_line(self, needle, timeout=30):
        end = time.perf_counter() + timeout
        while time.perf_counter() < end:
            t = self.line_time(needle)
            if t is not None:
                return t
            if self.proc.poll() is not None:
                break
            time.sleep(0.01)
        sys.exit('agent: no %r on stderr; got:\n%s' % (needle, '\n'.join(l for _, l in self.lines)))

    def token(self):
        with open(os.path.join(self.cfg, 'run', 'auth_token')) as f:
            return f.read().strip()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(5)


def proc_ticks_path(path):
    """utime + stime from a /proc stat file, in clock ticks."""
    with open(path) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return int(fields[11]) + int(fields[12])


def proc_ticks(pid):
    """utime + stime of a process (all its threads), in clock ticks."""
    return proc_ticks_path('/proc/%d/stat' % pid)


def proc_status_kib(pid, key):
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith(key + ':'):
                return int(line.split()[1])
    return None


def pct(values, p):
    """Nearest-rank percentile."""
    s = sorted(values)
    return s[max(0, min(len(s) - 1, int(round(p / 100 * len(s) + 0.5)) - 1))]


def summary(values):
    return {'n': len(values), 'p50': statistics.median(values), 'p95': pct(values, 95),
            'min': min(values), 'max': max(values)}


def machine():
    cpu = 'unknown'
    with open('/proc/cpuinfo') as f:
        for line in f:
            if line.startswith('model name'):
                cpu = line.split(':', 1)[1].strip()
                break
    return {'nproc': os.cpu_count(), 'cpu': cpu, 'loadavg': open('/proc/loadavg').read().split()[:3]}
