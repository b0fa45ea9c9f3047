"""Results of read-only tools from the worker's call cache (the `CallCache` the model calls use: the same
SQLite file, `tool:` keys beside the model calls' `model:` keys).

Invariants: the catalogue decides which tools may be cached and for how long (`ToolSpec.cache_for`); the
workflow decides per call, in the stamped `cache` flag, whether this one may (a call with the flag unset is
never looked up nor stored). The key is the tool's name and its canonical arguments without the flag,
versioned. Only successful results are stored. A cache that cannot be read or written, an entry that does
not decode or has outlived the tool's `cache_for`: a miss, and the tool simply runs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from opentelemetry import trace
from pydantic import BaseModel, ValidationError
from temporalio import activity

from activities import metrics
from contracts.tools import CacheableArgs, ToolResult
from core.hashing import sha256_text
from core.policy import canonical_arguments
from core.tools import TOOLS
from stores.protocols import CallCache

KEY_VERSION = "v1"  # bump when a cached tool's output format changes: older entries then simply miss


def tool_cache_key(tool: str, args: CacheableArgs) -> str:
    """`tool:v1:<sha256 of name and canonical arguments>`; the stamped flag is not part of it."""
    return f"tool:{KEY_VERSION}:" + sha256_text(f"{tool}\n{canonical_arguments(args)}")


class CachedResult(BaseModel):
    """What a cache entry holds: the result and when it was stored (to honour the tool's `cache_for`)."""

    stored_at: float
    result: ToolResult


class ToolCache:
    """The tools' view of the worker's call cache (None: every call runs, FOREMAN_CACHE=off)."""

    def __init__(self, cache: CallCache | None) -> None:
        self.cache = cache

    async def _lookup(self, key: str, max_age_seconds: float) -> ToolResult | None:
        text = await asyncio.to_thread(self.cache.get, key)
        if text is None:
            return None
        try:
            entry = CachedResult.model_validate_json(text)
        except ValidationError:
            activity.logger.warning("tool cache entry %s is not a result of this version: ignored", key[:24])
            return None
        return entry.result if time.time() - entry.stored_at <= max_age_seconds else None

    async def answer(self, tool: str, args: CacheableArgs, run: Callable[[], Awaitable[ToolResult]]) -> ToolResult:
        """The cached result of this call if the workflow allowed it and there is one; else `run()`'s
        (stored when it succeeded)."""
        max_age = TOOLS[tool].cache_for
        if self.cache is None or not args.cache or max_age is None:
            return await run()
        key = tool_cache_key(tool, args)
        hit = await self._lookup(key, max_age.total_seconds())
        trace.get_current_span().set_attribute("foreman.cache_hit", hit is not None)
        metrics.cache_lookup("tool", hit is not None, tool)
        if hit is not None:
            activity.logger.info("%s answered from the call cache", tool)
            return hit.model_copy(update={"cached": True})
        result = await run()
        if result.ok:
            await asyncio.to_thread(self.cache.put, key, CachedResult(stored_at=time.time(), result=result).model_dump_json())
        return result
