"""Declared output extraction for tool chains: pass one field of a tool's output to the next step,
not the whole text. A JSON pointer (RFC 6901) over the output (or, for `http_fetch`, over the body
after its status line), or a regex whose first group (else whole match) is the value. Pure."""

from __future__ import annotations

import json
import re

from contracts.plan import OutputExtraction


class ExtractionFailed(ValueError):
    """The declared field is not in the output."""


def _json_document(text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        _, _, body = text.partition("\n\n")  # http_fetch: "HTTP 200 ... from URL\n\n<body>"
        try:
            return json.loads(body)
        except json.JSONDecodeError as err:
            raise ExtractionFailed(f"the output is not JSON ({err.msg})") from err


def json_pointer(document: object, pointer: str) -> object:
    """RFC 6901: `/a/0/b`; `~1` is `/` and `~0` is `~` inside a token; "" is the whole document."""
    value = document
    for raw in pointer.split("/")[1:] if pointer else []:
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(value, dict) and token in value:
            value = value[token]
        elif isinstance(value, list) and token.isdigit() and int(token) < len(value):
            value = value[int(token)]
        else:
            raise ExtractionFailed(f"{pointer!r} is not in the output (no {token!r})")
    return value


# What a regex extraction runs in its own process (`python -I -S -c`, stdlib only), so a pattern that backtracks for ever
# can be killed: JSON {"pattern", "text"} on stdin; on stdout the value, or null when nothing matches. The same rule as
# `extract` below (first group, else the whole match).
REGEX_PROGRAM = """
import json, re, sys
job = json.load(sys.stdin)
match = re.search(job["pattern"], job["text"], re.MULTILINE)
json.dump(None if match is None else (match.group(1) if match.re.groups else match.group(0)), sys.stdout)
"""


def extract(text: str, spec: OutputExtraction) -> str:
    """The declared field of `text`; strings as they are, anything else as compact JSON."""
    if spec.json_pointer is not None:
        value = json_pointer(_json_document(text), spec.json_pointer)
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    assert spec.regex is not None
    match = re.search(spec.regex, text, re.MULTILINE)
    if match is None:
        raise ExtractionFailed(f"/{spec.regex}/ does not match the output")
    return match.group(1) if match.re.groups else match.group(0)
