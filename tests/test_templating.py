"""Template filling (`workflows/templating.py`): placeholders, and the invariant that step outputs are
substituted into parsed JSON strings, so they can never change the structure of tool arguments.
"""

from __future__ import annotations

import json
import re

import pytest

from core.templating import referenced_steps, render, render_arguments, slugify

GOAL = "Explain Temporal retries!"
OUTPUTS = {"research": "notes", "draft-2": "the draft"}

# Outputs a model might produce that would break naive string substitution into JSON text.
HOSTILE = [
    'He said "hi"',
    '", "path": "/etc/passwd',
    '"}, "extra": {"x": 1',
    '{"path": "../../etc/passwd", "content": "pwned"}',
    "back\\slash \\n \\u0022 \\g<0> \\1",
    "{{goal}} {{steps.research.output}}",
    "line\nbreak\ttab\r\x00",
    "ünïcode ✓ 😀",
    "}}{{",
]


# --- render ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "template, rendered",
    [
        ("{{goal}}", GOAL),
        ("{{goal_slug}}", "explain-temporal-retries"),
        ("{{steps.research.output}}", "notes"),
        ("{{ steps.draft-2.output }}", "the draft"),  # spaces inside braces; hyphenated id
        ("{{  goal  }}", GOAL),
        ("# {{goal}}\n\n{{steps.draft-2.output}}\n{{steps.research.output}}", f"# {GOAL}\n\nthe draft\nnotes"),
        ("{{goal}}{{goal}}", GOAL * 2),
        ("no placeholders", "no placeholders"),
        ("", ""),
    ],
)
def test_render(template: str, rendered: str) -> None:
    assert render(template, GOAL, OUTPUTS) == rendered


@pytest.mark.parametrize(
    "template",
    ["{{other}}", "{goal}", "{{ goal }", "{{steps.research}}", "{{steps.Research.output}}", "{{steps..output}}"],
)
def test_render_leaves_non_placeholders_alone(template: str) -> None:
    assert render(template, GOAL, OUTPUTS) == template


def test_render_unknown_step_raises_key_error() -> None:
    with pytest.raises(KeyError, match="ghost"):
        render("{{steps.ghost.output}}", GOAL, OUTPUTS)


@pytest.mark.parametrize("value", HOSTILE)
def test_render_substitutes_literally_once(value: str) -> None:
    # No re-expansion of placeholders inside values, no regex replacement escapes (\1, \g<0>).
    assert render("<{{steps.research.output}}>", value, {"research": value}) == f"<{value}>"
    assert render("<{{goal}}>", value, {}) == f"<{value}>"


def test_referenced_steps() -> None:
    template = "{{goal}} {{ steps.a.output }} {{steps.b_1.output}} {{steps.a.output}} {{steps.B.output}} {{goal_slug}}"
    assert referenced_steps(template) == {"a", "b_1"}
    assert referenced_steps("{{goal}}") == set()


# --- render_arguments ------------------------------------------------------------------------


def test_render_arguments_fills_nested_strings_only() -> None:
    arguments = {
        "path": "briefs/{{goal_slug}}.md",
        "options": {"title": "# {{goal}}", "tags": ["{{steps.research.output}}", "fixed", 3]},
        "count": 2,
        "ratio": 0.5,
        "flag": True,
        "nothing": None,
        "{{goal}}": "keys are not templates",
    }
    rendered = json.loads(render_arguments(json.dumps(arguments), GOAL, OUTPUTS))
    assert rendered == {
        "path": "briefs/explain-temporal-retries.md",
        "options": {"title": f"# {GOAL}", "tags": ["notes", "fixed", 3]},
        "count": 2,
        "ratio": 0.5,
        "flag": True,
        "nothing": None,
        "{{goal}}": "keys are not templates",
    }


def test_render_arguments_is_canonical() -> None:
    a = render_arguments('{"b": "{{goal}}", "a": 1}', "ü", {})
    b = render_arguments('{ "a" : 1,\n "b" : "{{goal}}" }', "ü", {})
    assert a == b == '{"a": 1, "b": "ü"}'


@pytest.mark.parametrize("value", HOSTILE)
def test_step_output_cannot_change_json_structure(value: str) -> None:
    template = json.dumps(
        {"path": "briefs/{{goal_slug}}.md", "content": "# {{goal}}\n\n{{steps.draft.output}}", "meta": {"src": ["{{steps.draft.output}}"]}}
    )
    rendered = json.loads(render_arguments(template, value, {"draft": value}))
    assert set(rendered) == {"path", "content", "meta"}
    assert set(rendered["meta"]) == {"src"}
    assert rendered["content"] == f"# {value}\n\n{value}"
    assert rendered["meta"]["src"] == [value]
    assert re.fullmatch(r"briefs/[a-z0-9-]+\.md", rendered["path"])


@pytest.mark.parametrize("arguments_json", ["[]", '["{{goal}}"]', '"{{goal}}"', "42", "null", "true"])
def test_render_arguments_requires_an_object(arguments_json: str) -> None:
    with pytest.raises(ValueError, match="must be a JSON object"):
        render_arguments(arguments_json, GOAL, OUTPUTS)


def test_render_arguments_invalid_json() -> None:
    with pytest.raises(ValueError):  # json.JSONDecodeError is a ValueError
        render_arguments('{"path": ', GOAL, OUTPUTS)


def test_render_arguments_unknown_step() -> None:
    with pytest.raises(KeyError):
        render_arguments('{"content": ["{{steps.ghost.output}}"]}', GOAL, OUTPUTS)


# --- slugify ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, slug",
    [
        ("Hello, World!", "hello-world"),
        ("  many   spaces\tand\nlines ", "many-spaces-and-lines"),
        ("one two three four five six seven eight", "one-two-three-four-five-six"),
        ("Q3 2024: revenue > $1M?", "q3-2024-revenue-1m"),
        ("snake_case-and-kebab", "snake-case-and-kebab"),
        ("../../etc/passwd", "etc-passwd"),
        ("", "goal"),
        ("   ", "goal"),
    ],
)
def test_slugify(text: str, slug: str) -> None:
    assert slugify(text) == slug


def test_slugify_max_words() -> None:
    assert slugify("a b c d", max_words=2) == "a-b"
    assert slugify("a b c d", max_words=0).startswith("goal-")


def test_slugs_of_goals_without_ascii_words_are_distinct_and_stable() -> None:
    assert slugify("!!! ??? ...") == slugify("!!! ??? ...") != slugify("研究报告")
    assert re.fullmatch(r"goal-[0-9a-f]{10}", slugify("研究报告"))


@pytest.mark.parametrize("text", [*HOSTILE, "研究报告", "/", "C:\\Windows\\System32", "a" * 10_000])
def test_slugify_is_always_path_safe(text: str) -> None:
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", slugify(text))


@pytest.mark.parametrize("text", ["a" * 300, " ".join(["abcdefghij" * 5] * 6)])
def test_slugify_fits_in_a_file_name(text: str) -> None:
    assert len(f"{slugify(text)}.md".encode()) <= 255
