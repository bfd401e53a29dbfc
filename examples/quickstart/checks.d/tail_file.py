"""Tails a file: every new line is sent as a log, with a cursor (byte offset and inode) so the
next run, or the next agent start, resumes right after the last line shipped. A rotated
(new inode) or truncated (shorter than the cursor) file is read again from its start."""
import os
import time

from datadog_checks.base import AgentCheck, ConfigurationError

DEFAULT_PATH = '/tmp/cairn-quickstart.log'


class TailFileCheck(AgentCheck):
    def check(self, instance):
        path = instance.get('path', DEFAULT_PATH)
        max_lines = int(instance.get('max_lines_per_run', 1000))
        if max_lines < 1:
            raise ConfigurationError('max_lines_per_run must be at least 1')
        try:
            st = os.stat(path)
        except FileNotFoundError:
            self.warning('%s does not exist yet; append a line to it: echo hello >> %s', path, path)
            return

        cursor = self.get_log_cursor()
        offset = 0
        if cursor and cursor.get('inode') == st.st_ino and cursor.get('offset', 0) <= st.st_size:
            offset = cursor['offset']
        elif cursor:
            self.log.info('%s was rotated or truncated; reading it from the start', path)

        sent = 0
        with open(path, 'rb') as f:
            f.seek(offset)
            while sent < max_lines:
                raw = f.readline()
                if not raw.endswith(b'\n'):
                    # Nothing more, or a line still being written: take it next run.
                    break
                offset += len(raw)
                self.send_log(
                    {
                        'message': raw.rstrip(b'\r\n').decode('utf-8', errors='replace'),
                        'timestamp': time.time(),
                        'status': 'info',
                        'file_path': path,
                    },
                    cursor={'offset': offset, 'inode': st.st_ino},
                )
                sent += 1
        self.gauge('quickstart.tail_file.lines_sent', sent, tags=['path:' + path], raw=True)
