# The seed page's "Using cursors for stateful logging" example, verbatim, plus the
# fetch_logs_since() it leaves to the reader: here, a read of an application's log table in
# SQLite (instance option `db_path`, default <run_path>/example-app.db).
from datadog_checks.base import AgentCheck
import time

class MyCustomCheck(AgentCheck):
    def check(self, instance):
        # Retrieve the last cursor for this stream
        last_cursor = self.get_log_cursor('my_stream')
        last_position = last_cursor.get('position', 0) if last_cursor else 0

        # Process logs from the last position
        new_logs = self.fetch_logs_since(last_position)

        for log in new_logs:
            # Submit each log with an updated cursor
            self.send_log(
                data={
                    'message': log['message'],
                    'timestamp': log['timestamp'],
                    'status': log['level']
                },
                cursor={'position': log['position']},
                stream='my_stream'
            )


import os
import sqlite3

import datadog_agent

_LEVELS = ('info', 'info', 'warning', 'error')


def _db_path(instance):
    path = instance.get('db_path')
    if not path:
        path = os.path.join(datadog_agent.get_config('run_path') or '.', 'example-app.db')
    return path


def fetch_logs_since(self, position):
    """Rows of the `app_log` table after `position`, oldest first."""
    path = _db_path(self.instance)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    db = sqlite3.connect(path)
    try:
        db.execute(
            'CREATE TABLE IF NOT EXISTS app_log ('
            'position INTEGER PRIMARY KEY, timestamp REAL, level TEXT, message TEXT)'
        )
        for _ in range(int(self.instance.get('simulate_writes', 0))):
            (n,) = db.execute('SELECT COUNT(*) FROM app_log').fetchone()
            db.execute(
                'INSERT INTO app_log (timestamp, level, message) VALUES (?, ?, ?)',
                (time.time(), _LEVELS[n % len(_LEVELS)], f'request {n + 1} served token=abc{n}'),
            )
        db.commit()
        rows = db.execute(
            'SELECT position, timestamp, level, message FROM app_log WHERE position > ? ORDER BY position',
            (position,),
        ).fetchall()
    finally:
        db.close()
    return [{'position': p, 'timestamp': t, 'level': lvl, 'message': m} for p, t, lvl, m in rows]


MyCustomCheck.fetch_logs_since = fetch_logs_since
