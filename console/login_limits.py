"""How many failed logins a user name or a client address may have: 5 in 5 minutes, then /login answers 429.

Both are counted, so guessing one user's password from many addresses is stopped by the name, and guessing many
names from one address by the address. An attempt is counted before its password check and taken back when it
succeeds, so parallel guesses cannot all reach the check before the first failure is known. In memory: a restart
forgets, and each console process counts its own. Bounded: past `max_keys` names and addresses, the least recently
tried is forgotten first.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable

FAILURES = 5
WINDOW_SECONDS = 300.0
MAX_KEYS = 10_000
MAX_NAME_CHARS = 200  # a user name's own limit: a longer one is no user, and a 64 KiB one must not be a 64 KiB key


class LoginLimiter:
    """Recent login attempts per user name and per client address, in a sliding window."""

    def __init__(self, failures: int = FAILURES, window_seconds: float = WINDOW_SECONDS, max_keys: int = MAX_KEYS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.failures = failures
        self.window_seconds = window_seconds
        self.max_keys = max_keys
        self._clock = clock
        self._attempts: OrderedDict[str, deque[float]] = OrderedDict()  # least recently tried first

    def __len__(self) -> int:
        return len(self._attempts)

    def retry_after(self, name: str, address: str) -> int | None:
        """Whole seconds until both `name` and `address` may try again; None when they may now."""
        now = self._clock()
        longest = 0.0
        for key in _keys(name, address):
            times = self._attempts.get(key)
            if times is not None and len(times) >= self.failures:  # the oldest of the last few leaves the window first
                longest = max(longest, times[0] + self.window_seconds - now)
        return math.ceil(longest) if longest > 0 else None

    def charge(self, name: str, address: str) -> None:
        """Count an attempt against `name` and `address`, as failed until `refund` says otherwise."""
        now = self._clock()
        for key in _keys(name, address):
            times = self._attempts.pop(key, None) or deque(maxlen=self.failures)  # only the last few decide
            times.append(now)
            self._attempts[key] = times
        while len(self._attempts) > self.max_keys:
            self._attempts.popitem(last=False)

    def refund(self, name: str, address: str) -> None:
        """Take back the attempt `charge` counted: its password was right."""
        for key in _keys(name, address):
            times = self._attempts.get(key)
            if times:
                times.pop()
                if not times:
                    del self._attempts[key]


def _keys(name: str, address: str) -> tuple[str, str]:
    return f"name:{name[:MAX_NAME_CHARS]}", f"address:{address}"
