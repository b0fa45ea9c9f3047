"""`search_corpus`: bm25-ranked full-text search over the document corpus (the `CorpusIndex` passed in).

Invariants: the index is brought up to date by the store before every search; this activity only turns
hits into text, each with a `[source: <relative path>]` line the model can cite verbatim, and logs
what was re-indexed. A call the workflow allows may be answered from the worker's call cache (`ToolCache`).
Blocking store calls run in a thread.
"""

from __future__ import annotations

from temporalio import activity

from activities.content_store import tool_result
from activities.tools.cache import ToolCache
from activities.tools.registry import run_store, tool_activity
from contracts.tools import SearchCorpusArgs, ToolResult
from stores.protocols import ContentStore, CorpusHit, CorpusIndex


def format_hits(query: str, hits: list[CorpusHit]) -> str:
    """Numbered hits, each with title, `[source: path]`, score (-bm25, higher is better) and snippet."""
    if not hits:
        return f"No documents match {query!r}."
    noun = "result" if len(hits) == 1 else "results"
    lines = [f"{len(hits)} {noun} for {query!r} (score = -bm25, higher is better):"]
    for rank, hit in enumerate(hits, start=1):
        lines += ["", f"[{rank}] {hit.title}", f"[source: {hit.path}]", f"score: {-hit.score:.3f}", " ".join(hit.snippet.split())]
    return "\n".join(lines)


class CorpusTools:
    """`search_corpus`, bound to one corpus index, one content store and the worker's tool cache."""

    def __init__(self, corpus: CorpusIndex, content: ContentStore, cache: ToolCache) -> None:
        self._corpus = corpus
        self._content = content
        self._cache = cache

    @tool_activity("search_corpus")
    async def search_corpus(self, args: SearchCorpusArgs) -> ToolResult:
        """Search the local document corpus (full text, bm25); each hit shows a `[source: <path>]` to cite."""
        return await self._cache.answer("search_corpus", args, lambda: self._search(args))

    async def _search(self, args: SearchCorpusArgs) -> ToolResult:
        found = await run_store(self._corpus.search, args.query, args.limit)
        changes = found.reindexed
        if changes.changed:
            activity.logger.info("corpus re-indexed: %d added, %d updated, %d deleted", changes.added, changes.updated, changes.deleted)
        return tool_result(self._content, "search_corpus", format_hits(args.query, found.hits))
