"""Reads /proc: load averages, memory and uptime as gauges, CPU time as a monotonic count,
and a service check saying whether /proc could be read. Also records the kernel version as
the check's metadata."""
import re

from datadog_checks.base import AgentCheck


def read(path):
    with open(path) as f:
        return f.read()


class SystemStatsCheck(AgentCheck):
    __NAMESPACE__ = 'quickstart'

    def check(self, instance):
        tags = instance.get('tags', [])
        try:
            loadavg = read('/proc/loadavg').split()
            meminfo = dict(
                (line.split(':')[0], int(line.split()[1]))
                for line in read('/proc/meminfo').splitlines()
                if len(line.split()) >= 2
            )
            uptime = float(read('/proc/uptime').split()[0])
            cpu = read('/proc/stat').splitlines()[0].split()
        except (OSError, ValueError, IndexError) as e:
            self.service_check('can_read_proc', self.CRITICAL, tags=tags, message=str(e))
            raise

        self.gauge('system.load.1', float(loadavg[0]), tags=tags)
        self.gauge('system.load.5', float(loadavg[1]), tags=tags)
        self.gauge('system.load.15', float(loadavg[2]), tags=tags)
        self.gauge('system.mem.total_kb', meminfo['MemTotal'], tags=tags)
        self.gauge('system.mem.available_kb', meminfo.get('MemAvailable', meminfo.get('MemFree', 0)), tags=tags)
        self.gauge('system.uptime', uptime, tags=tags)
        # /proc/stat's first line: cpu user nice system idle iowait irq softirq ... (in ticks).
        user, nice, system, idle = (int(v) for v in cpu[1:5])
        self.monotonic_count('system.cpu.busy_ticks', user + nice + system, tags=tags)
        self.rate('system.cpu.idle_ticks', idle, tags=tags)
        self.service_check('can_read_proc', self.OK, tags=tags)

        release = read('/proc/sys/kernel/osrelease').strip()
        found = re.match(r'\d+\.\d+\.\d+', release)
        if found:
            self.set_metadata('version', found.group(0))
