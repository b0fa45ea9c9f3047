"""Host allow-list matching, shared by the policy gate (a role's hosts) and `http_fetch` (the worker's
FOREMAN_HTTP_ALLOWED_HOSTS), so both judge a host the same way."""

from __future__ import annotations

from collections.abc import Iterable


def normalise_host(host: str) -> str:
    """Lower case, without the trailing dot of a fully qualified name (`Example.COM.` is `example.com`)."""
    return host.strip().lower().rstrip(".")


def host_matches(host: str, patterns: Iterable[str]) -> bool:
    """Exact host, or `*.example.com` for any subdomain of example.com (not example.com itself)."""
    host = normalise_host(host)
    if not host:
        return False
    for pattern in (normalise_host(p) for p in patterns):
        if pattern.startswith("*.") and host.endswith(pattern[1:]) and len(host) > len(pattern) - 1:
            return True
        if host == pattern:
            return True
    return False
