"""``AgentCheck``: the base class of every custom check.

The log hand-off (``send_log``, ``get_log_cursor``) and the persistent cache are native methods
of ``_cairn.CheckBase``: each log goes from the check's dict straight into the agent's buffer,
with no JSON round trip in Python.
"""
import copy
import functools
import json
import logging
import re
import traceback

import aggregator
import datadog_agent
from _cairn import CheckBase

from ..log import CheckLoggingAdapter, init_logging

_SEMVER = re.compile(
    r'^v?(?P<major>0|[1-9]\d*)\.(?P<minor>0|[1-9]\d*)\.(?P<patch>0|[1-9]\d*)'
    r'(?:-(?P<release>[0-9A-Za-z.-]+))?(?:\+(?P<build>[0-9A-Za-z.-]+))?$'
)

init_logging()


def metadata_entrypoint(method):
    """Marks a method that collects metadata: it does nothing when metadata collection is off,
    and an exception inside it is logged, never failing the check run."""

    @functools.wraps(method)
    def entrypoint(self, *args, **kwargs):
        if not self.is_metadata_collection_enabled():
            return None
        try:
            return method(self, *args, **kwargs)
        except Exception:
            self.log.debug('error collecting metadata in %s', method.__name__, exc_info=True)
            return None

    return entrypoint


class AgentCheck(CheckBase):
    """The base class of a check.

    The agent builds one object per instance with ``Cls(name, init_config, instances)`` and
    calls ``run()`` at every collection interval; ``run()`` calls ``check(instance)``.

    Native methods inherited from ``CheckBase``:

    - ``send_log(data, cursor=None, stream='default')``: submit a log. ``data`` must include at
      least a ``message`` key. ``timestamp`` is seconds since the Unix epoch (defaults to now);
      ``ddtags`` is a comma-separated string of tags (defaults to the instance's tags). Every
      other key is passed through as a log attribute. ``cursor`` is saved with the log and can be
      retrieved later with ``get_log_cursor(stream)``.
    - ``get_log_cursor(stream='default')``: the last cursor saved for ``stream``, or ``None``.
    - ``read_persistent_cache(key)`` / ``write_persistent_cache(key, value)``: a string cache per
      check instance that survives restarts.
    - ``gauge``, ``count``, ``monotonic_count`` (``flush_first_value=False``), ``rate``,
      ``histogram``, ``historate``, ``increment``, ``decrement``, each
      ``(name, value, tags=None, hostname=None, device_name=None, raw=False)``: sample a metric.
      ``None`` is skipped; a value ``float()`` refuses is a warning; NaN and infinities are
      refused by the aggregator (warned once per metric); ``__NAMESPACE__`` prefixes the name
      unless ``raw``; ``device_name`` becomes the tag ``device:<name>``.

    Limits, each a ``ValueError`` naming the size and the limit, with nothing of that call
    recorded (a refused cursor takes its log with it): a log whose JSON does not fit in one
    payload (``logs_config.batch_max_content_size``, 5,000,000 bytes by default), since it could
    never be sent; a cursor or cache entry over 1 MiB, key and value together. A key holding a
    lone surrogate (``'\\udcff'``, as ``surrogateescape`` decoding leaves them) has no UTF-8
    form: a ``ValueError`` naming the key; so has a cursor or cache value. In a log, a str value
    has each lone surrogate replaced by U+FFFD, an int outside 64 bits is sent as its decimal
    string, and a part nested more than 64 levels inside an attribute as its JSON text; the log
    then carries ``_cairn: {"normalized": [...]}`` (docs/pipeline.md, "What send_log sends").
    """

    OK, WARNING, CRITICAL, UNKNOWN = (0, 1, 2, 3)
    __NAMESPACE__ = ''

    metadata_entrypoint = staticmethod(metadata_entrypoint)

    def __init__(self, *args, **kwargs):
        # Accepts (name, init_config, instances) and the legacy
        # (name, init_config, agentConfig, instances), positionally or by keyword.
        self.name = kwargs.get('name', args[0] if args else '')
        init_config = kwargs.get('init_config', args[1] if len(args) > 1 else None)
        if 'instances' in kwargs:
            instances = kwargs['instances']
        elif len(args) > 2:
            instances = args[-1]
        else:
            instances = None
        self.init_config = init_config if init_config is not None else {}
        self.instances = list(instances) if instances else []
        self.instance = self.instances[0] if self.instances else None
        self.agentConfig = kwargs.get('agentConfig', {})
        self.warnings = []
        self.hostname = datadog_agent.get_hostname()
        self.log = CheckLoggingAdapter(logging.getLogger(f'datadog_checks.{self.name}'), {})

    # -- the check -------------------------------------------------------------------------

    def check(self, instance):
        """Collects data for one instance. Override it."""
        raise NotImplementedError(f'{type(self).__name__} does not implement check(self, instance)')

    def run(self):
        """Runs ``check`` on a copy of the instance. Returns ``''`` on success, or a JSON list
        ``[{"message", "traceback"}]`` describing the error."""
        try:
            instance = copy.deepcopy(self.instances[0]) if self.instances else {}
            self.check(instance)
            return ''
        except Exception as e:
            return json.dumps([{'message': str(e), 'traceback': traceback.format_exc()}])

    def persistent_cache_id(self):
        """The ID that identifies this check instance in the persistent cache (cursors
        included). By default the digest part of ``check_id``, so any config change starts a
        fresh cache. Override it to keep the cache across changes of options that do not
        matter to it (``tags``, timeouts): the cache is stored under
        ``<name>[:<instance name>]:<persistent_cache_id()>``, as datadog-checks-base (37.20 and
        later) stores it. The agent asks once, after construction."""
        return self.check_id.split(':')[-1]

    def cancel(self):
        """Called when the check is unscheduled; override to release resources."""

    # -- metrics, service checks, events ----------------------------------------------------

    def _metric_name(self, name, raw):
        if raw or not self.__NAMESPACE__:
            return name
        return f'{self.__NAMESPACE__}.{name}'

    def _tags(self, tags, device_name):
        out = []
        for tag in tags or ():
            if tag is None:
                continue
            if isinstance(tag, bytes):
                tag = tag.decode('utf-8', 'replace')
            elif not isinstance(tag, str):
                tag = str(tag)
            out.append(tag)
        if device_name:
            out.append(f'device:{device_name}')
        return out

    # gauge, count, monotonic_count, rate, histogram, historate, increment and decrement are
    # CheckBase's (native): a sample goes from the call straight into the check's aggregator.

    def service_check(self, name, status, tags=None, hostname=None, message=None, raw=False):
        """Send the status of a service: ``AgentCheck.OK``, ``WARNING``, ``CRITICAL`` or ``UNKNOWN``."""
        if status not in (0, 1, 2, 3):
            raise ValueError(f'service_check {name!r}: status must be 0..3 (OK, WARNING, CRITICAL, UNKNOWN), got {status!r}')
        aggregator.submit_service_check(
            self,
            self.check_id,
            self._metric_name(name, raw),
            status,
            self._tags(tags, None),
            hostname or '',
            '' if message is None else str(message),
        )

    def event(self, event):
        """Send an event: a dict with at least ``msg_title`` and ``msg_text``."""
        if not isinstance(event, dict):
            raise TypeError(f'event must be a dict, got {type(event).__name__}')
        aggregator.submit_event(self, self.check_id, event)

    def is_metadata_collection_enabled(self):
        """``enable_metadata_collection`` in datadog.yaml (on unless turned off)."""
        return bool(datadog_agent.get_config('enable_metadata_collection'))

    def set_metadata(self, name, value, **options):
        """Record metadata about the monitored thing. ``version`` is split as the Datadog
        library splits it: ``version.raw``, ``version.scheme`` and, for semver (the default
        scheme), ``version.major/minor/patch`` (and ``release``/``build`` when present); a
        value that is not semver is logged at debug and not recorded."""
        if not self.is_metadata_collection_enabled():
            return
        if name != 'version':
            datadog_agent.set_check_metadata(self.check_id, name, str(value))
            return
        raw = str(value)
        scheme = options.get('scheme', 'semver')
        parts = {}
        if scheme == 'semver':
            m = _SEMVER.match(raw)
            if m is None:
                self.log.debug('unable to transform `version` metadata value `%s`: not semver', raw)
                return
            parts = {k: v for k, v in m.groupdict().items() if v is not None}
        for key, part in parts.items():
            datadog_agent.set_check_metadata(self.check_id, 'version.' + key, part)
        datadog_agent.set_check_metadata(self.check_id, 'version.raw', raw)
        datadog_agent.set_check_metadata(self.check_id, 'version.scheme', scheme)

    # -- warnings ---------------------------------------------------------------------------

    def warning(self, warning_message, *args, **kwargs):
        """Record a warning for this run (shown by ``cairn check`` and the status)."""
        message = str(warning_message)
        if args:
            message = message % args
        self.log.warning(message)
        self.warnings.append(message)

    def get_warnings(self):
        """Return and clear the warnings recorded since the last call."""
        warnings, self.warnings = self.warnings, []
        return warnings
