"""`python_block`: which program in a model's reply runs as a run_python call (pure)."""

from __future__ import annotations

import pytest

from core.code_blocks import python_block


@pytest.mark.parametrize(
    "reply, program",
    [
        ("Here:\n```python\nprint(6 * 7)\n```\nDone.", "print(6 * 7)\n"),
        ("```py\nx = 1\nprint(x)\n```", "x = 1\nprint(x)\n"),
        ("```Python3  \nprint(1)\n```", "print(1)\n"),
        ("```\nprint(2)\n```", "print(2)\n"),  # a bare fence: the step runs Python only
        ("```python\n\n```\n```python\nprint(3)\n```", "print(3)\n"),  # the first non-empty block
        ("```python\nprint('cut at max_tokens'", "print('cut at max_tokens'\n"),  # an unclosed block runs to the end
    ],
)
def test_the_first_fenced_program_is_found(reply: str, program: str) -> None:
    assert python_block(reply) == program


@pytest.mark.parametrize("reply", ["The answer is 42.", "Use `print(42)` inline.", "```json\n{\"a\": 1}\n```", "```python\n   \n```"])
def test_no_program_in_a_reply_without_a_python_block(reply: str) -> None:
    assert python_block(reply) is None
