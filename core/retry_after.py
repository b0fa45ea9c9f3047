"""The one `Retry-After` parser, for model providers (429/5xx) and `http_fetch` (429/503).

Pure: the caller passes `now` (an activity's clock), so an HTTP-date becomes a delay without this
module reading a clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

# A server asking for hours is almost certainly wrong; Temporal's own backoff takes over past this.
MAX_RETRY_AFTER = timedelta(minutes=10)


def parse_retry_after(headers: Mapping[str, str], now: datetime) -> timedelta | None:
    """The server's requested delay: `retry-after-ms`, else `Retry-After` as seconds or an HTTP date.

    None when absent, unparsable or not in the future; never more than MAX_RETRY_AFTER.
    """
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return _clamp(timedelta(milliseconds=float(raw_ms)))
        except (ValueError, OverflowError):
            pass  # fall through to Retry-After
    raw = (headers.get("retry-after") or "").strip()
    if not raw:
        return None
    try:
        return _clamp(timedelta(seconds=float(raw)))
    except (ValueError, OverflowError):
        pass
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return _clamp(when - now)


def _clamp(delay: timedelta) -> timedelta | None:
    if delay <= timedelta(0):
        return None
    return min(delay, MAX_RETRY_AFTER)
