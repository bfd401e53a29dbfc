# The seed page's "Error logging" example, verbatim, plus the perform_check() it leaves to the
# reader: read the instance's `status_file` and fail unless it says "ok".
from datadog_checks.base import AgentCheck
import time

class MyCustomCheck(AgentCheck):
    def check(self, instance):
        try:
            # Your check logic here
            self.perform_check()
        except Exception as e:
            # Log the error
            self.send_log({
                'message': f'Check failed: {str(e)}',
                'timestamp': time.time(),
                'status': 'error',
                'error_type': type(e).__name__,
                'service': 'my-custom-integration'
            })
            raise


def perform_check(self):
    with open(self.instance['status_file']) as f:
        status = f.read().strip()
    if status != 'ok':
        raise RuntimeError(f'status is {status!r}')


MyCustomCheck.perform_check = perform_check
