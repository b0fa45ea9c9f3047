"""Code blocks in a model's reply: the program a model wrote as a fenced ```python block (CodeAct-style actions,
for models that write code better than they call tools). Pure; the agent runner runs what this finds through
`run_python`, so policy, approvals and the sandbox apply exactly as to a tool call."""

from __future__ import annotations

import re

# ```python / ```py / ```python3 / a bare ``` fence; an unclosed block (a reply cut at max_tokens) runs to the end.
_BLOCK = re.compile(r"```(?:python3?|py)?[ \t]*\r?\n(.*?)(?:```|\Z)", re.DOTALL | re.IGNORECASE)

CODE_BLOCK_HINT = (
    "You run Python by replying with one ```python block whose program prints the result; its output comes back "
    "to you, and then you reply with the final answer in words."
)
CODE_RAN_NOTE = (
    "If the output answers your task, reply with the final answer in words, without code; "
    "otherwise reply with corrected code in one ```python block."
)


def python_block(text: str) -> str | None:
    """The first non-empty fenced code block in `text`, or None."""
    for match in _BLOCK.finditer(text):
        code = match.group(1).strip("\n")
        if code.strip():
            return code + "\n"
    return None
