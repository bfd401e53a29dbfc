"""Reference (b): the hand-off check under plain python3 with the real datadog-checks-base:
its send_log copies the dict, adds tags, converts the timestamp and JSON-encodes, then calls a
no-op host function, which is the cheapest any agent's host side could be."""
import importlib.util
import sys

from datadog_checks.base.checks import base as base_module


def _noop_send_log(json_line, check_id):
    pass


def main(n, result_file, check_file):
    base_module.datadog_agent.send_log = _noop_send_log
    assert type(base_module.datadog_agent).__name__ == 'DatadogAgentStub', 'expected the library stub host'
    spec = importlib.util.spec_from_file_location('handoff_check', check_file)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    check = mod.HandoffBench('handoff', {}, [{'logs': n, 'result_file': result_file, 'tags': ['env:bench']}])
    check.check_id = 'handoff:0000000000000000'
    error = check.run()
    assert error == '', error


if __name__ == '__main__':
    main(int(sys.argv[1]), sys.argv[2], sys.argv[3])
