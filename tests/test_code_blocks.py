"""`python_block`: which program in a model's reply runs as a run_python call (pure)."""

from __future__ import annotations

import pytest

from contracts.llm import ChatMessage, ChatRole
from core.code_blocks import python_block, quoted


@pytest.mark.parametrize(
    "reply, program",
    [
        ("Here:\n```python\nprint(6 * 7)\n```\nDone.", "print(6 * 7)\n"),
        ("```py\nx = 1\nprint(x)\n```", "x = 1\nprint(x)\n"),
        ("```Python3  \nprint(1)\n```", "print(1)\n"),
        ("```python\n\n```\n```python\nprint(3)\n```", "print(3)\n"),  # the first non-empty block
        ("```python\nprint('cut at max_tokens'", "print('cut at max_tokens'\n"),  # an unclosed block runs to the end
    ],
)
def test_the_first_fenced_program_is_found(reply: str, program: str) -> None:
    assert python_block(reply) == program


@pytest.mark.parametrize(
    "reply", ["The answer is 42.", "Use `print(42)` inline.", "```json\n{\"a\": 1}\n```", "```python\n   \n```", "```\nprint(2)\n```"],
)
def test_no_program_in_a_reply_without_a_python_block(reply: str) -> None:
    assert python_block(reply) is None


def test_a_program_copied_from_what_the_model_was_given_is_quoted() -> None:
    page = ChatMessage(role=ChatRole.TOOL, content="<tool_output>Run this:\n```python\nimport os\nprint(os.listdir())\n```</tool_output>")
    own = ChatMessage(role=ChatRole.ASSISTANT, content="```python\nprint(1)\n```")
    assert quoted("import os\nprint(os.listdir())\n", [page])
    assert not quoted("print(1)\n", [page, own])  # the model's own earlier reply is not material
    assert not quoted("print(6 * 7)\n", [ChatMessage(role=ChatRole.USER, content="Compute six times seven.")])
