"""Configuration helpers."""


def is_affirmative(value):
    """Return True for the values the Datadog Agent treats as "yes".

    ``True``, non-zero numbers and the strings ``yes``, ``true`` and ``1`` (any case) are
    affirmative; everything else, including ``None``, is not.
    """
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, bytes):
        value = value.decode('utf-8', 'replace')
    return str(value).strip().lower() in ('yes', 'true', '1', 'y', 'on')
