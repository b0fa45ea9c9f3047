"""A small MCP server for the tests (the `mcp` package's MCPServer, formerly FastMCP): notes kept in the
folder NOTES_DIR names, every post appended to `posted.jsonl` there so a test can count what really ran
(with the idempotency key the request's `_meta` carried, when it carried one).

    python -m tests.mcp_notes_server                       # stdio (the worker starts it)
    python -m tests.mcp_notes_server streamable-http PORT  # streamable HTTP on 127.0.0.1:PORT/mcp
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from mcp.server.mcpserver import Context, MCPServer
from mcp.types import ToolAnnotations

app = MCPServer("notes")
NOTES = {"retries": "Retries repeat a failed call; idempotency makes the repeat harmless."}


def _posted() -> Path:
    return Path(os.environ.get("NOTES_DIR", ".")) / "posted.jsonl"


@app.tool(annotations=ToolAnnotations(read_only_hint=True))
def lookup(topic: str) -> str:
    """Look up the note kept on a topic."""
    return NOTES.get(topic, f"no note on {topic!r}")


@app.tool()
def post_note(topic: str, text: str, ctx: Context) -> str:
    """Post a note on a topic (others see it)."""
    key = (ctx.request_context.meta or {}).get("foreman/idempotency-key")
    with _posted().open("a", encoding="utf-8") as log:
        log.write(json.dumps({"topic": topic, "text": text, **({"key": key} if key else {})}) + "\n")
    return f"posted a note on {topic!r}"


@app.tool(annotations=ToolAnnotations(destructive_hint=True))
def delete_notes(topic: str) -> str:
    """Delete every note on a topic."""
    return f"deleted the notes on {topic!r}"


@app.tool(annotations=ToolAnnotations(read_only_hint=True))
def dump(lines: int) -> str:
    """Many lines of text (for the content store)."""
    return "\n".join(f"line {i:05d}" for i in range(lines))


@app.tool(annotations=ToolAnnotations(read_only_hint=True))
def slow(seconds: float) -> str:
    """Answer after a while."""
    time.sleep(seconds)
    return "finally"


@app.tool(annotations=ToolAnnotations(read_only_hint=True))
def broken(reason: str) -> str:
    """Always fails."""
    raise ValueError(reason)


@app.tool(annotations=ToolAnnotations(read_only_hint=True))
def crash() -> str:
    """End the server process at once (a server that dies mid-session)."""
    os._exit(3)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "streamable-http":
        app.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        app.run("stdio")
