"""Cairn's bundled ``datadog_checks`` namespace.

Used only when no ``datadog_checks`` package is importable from ``python_env``: an installed
``datadog-checks-base`` always takes precedence over this copy.
"""
__path__ = __import__('pkgutil').extend_path(__path__, __name__)  # type: ignore[name-defined]
