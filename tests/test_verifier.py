"""The verifier's deterministic checks (`check_output`) and the `verify_output` decision, run under
`ActivityEnvironment`; `model_judge` and `relevance` against a real local OpenAI-protocol server.
"""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError
from temporalio.testing import ActivityEnvironment

from activities.verifier import check_output, verify_output
from contracts.verify import (
    AcceptanceCheck,
    CheckKind,
    CitationsCheck,
    Decision,
    JsonSchemaCheck,
    LengthCheck,
    ModelJudgeCheck,
    NonEmptyCheck,
    RegexCheck,
    RelevanceCheck,
    RequiredTermsCheck,
    Verdict,
    VerifyRequest,
)
from contracts.llm import ModelSpec, Provider
from tests.llama_server import Recorded, Reply, ScriptedServer

SCHEMA = json.dumps(
    {"type": "object", "properties": {"title": {"type": "string"}, "n": {"type": "integer"}}, "required": ["title"]}
)


@pytest.mark.parametrize(
    "check, output, passed",
    [
        (NonEmptyCheck(), "x", True),
        (NonEmptyCheck(), "", False),
        (NonEmptyCheck(), " \n\t ", False),
        (LengthCheck(min_chars=3), "abc", True),
        (LengthCheck(min_chars=3), "ab", False),
        (LengthCheck(min_chars=3), "   ab   ", False),  # surrounding whitespace does not count
        (LengthCheck(max_chars=3), "abc", True),
        (LengthCheck(max_chars=3), "abcd", False),
        (LengthCheck(max_chars=3), "  abc\n", True),
        (LengthCheck(min_chars=2, max_chars=4), "abcd", True),
        (LengthCheck(), "", True),
        (JsonSchemaCheck(json_schema=SCHEMA), '{"title": "t", "n": 1}', True),
        (JsonSchemaCheck(json_schema=SCHEMA), '{"n": 1}', False),
        (JsonSchemaCheck(json_schema=SCHEMA), '{"title": "t", "n": "one"}', False),
        (JsonSchemaCheck(json_schema=SCHEMA), "[]", False),
        (JsonSchemaCheck(json_schema=SCHEMA), "Here is the JSON: {}", False),
        (RequiredTermsCheck(terms=["Temporal", "retry"]), "temporal will RETRY it", True),
        (RequiredTermsCheck(terms=["Temporal", "retry"]), "temporal only", False),
        (RequiredTermsCheck(terms=["Temporal"], case_sensitive=True), "Temporal", True),
        (RequiredTermsCheck(terms=["Temporal"], case_sensitive=True), "temporal", False),
        (CitationsCheck(), "Fact [source: a.md].", True),
        (CitationsCheck(), "Fact (source: a.md).", False),
        (CitationsCheck(min_count=2), "A [source: a.md]. B [source:b.md].", True),
        (CitationsCheck(min_count=2), "A [source: a.md].", False),
        (CitationsCheck(known_sources=["a.md", "b.md"]), "A [source:  a.md ] B [source: b.md]", True),
        (CitationsCheck(known_sources=["a.md"]), "A [source: a.md] B [source: made-up.md]", False),
        (CitationsCheck(pattern=r"\(see (\w+\.md)\)"), "A (see a.md)", True),
        (CitationsCheck(pattern=r"\(see (\w+\.md)\)"), "A [source: a.md]", False),
        (CitationsCheck(pattern=r"\[\d+\]", min_count=2), "A [1] B [2]", True),  # no group: whole match
        (RegexCheck(pattern=r"^## Summary$"), "# Title\n## Summary\ntext", True),  # multiline anchors
        (RegexCheck(pattern=r"^## Summary$"), "# Title\n### Summary", False),
        (RegexCheck(pattern=r"TODO", must_match=False), "all done", True),
        (RegexCheck(pattern=r"TODO", must_match=False), "x TODO y", False),
    ],
)
def test_check_output(check: AcceptanceCheck, output: str, passed: bool) -> None:
    result = check_output(check, output)
    assert result.kind == check.type
    assert result.passed is passed
    assert bool(result.detail) is not passed  # failures say why, passes say nothing


@pytest.mark.parametrize(
    "check, output, detail",
    [
        (NonEmptyCheck(), "  ", "the output is empty"),
        (LengthCheck(min_chars=5), "abc", "the output has 3 characters; at least 5 are needed"),
        (LengthCheck(max_chars=2), "abc", "the output has 3 characters; at most 2 are allowed"),
        (JsonSchemaCheck(json_schema=SCHEMA), "{oops", "the output is not JSON: "),
        (JsonSchemaCheck(json_schema=SCHEMA), "{}", "the output does not match the schema: 'title' is a required property"),
        (RequiredTermsCheck(terms=["alpha", "Beta", "gamma"]), "ALPHA", "missing required terms: ['Beta', 'gamma']"),
        (CitationsCheck(min_count=3), "[source: a] [source: b]", "2 citations found; at least 3 are needed"),
        (
            CitationsCheck(known_sources=["a"]),
            "[source: z] [source: a] [source: y] [source: z]",
            "citations of unknown sources: ['y', 'z']",
        ),
        (RegexCheck(pattern=r"\d+"), "none", r"the output does not match /\d+/"),
        (RegexCheck(pattern=r"\d+", must_match=False), "7", r"the output must not match /\d+/"),
    ],
)
def test_check_output_detail(check: AcceptanceCheck, output: str, detail: str) -> None:
    assert check_output(check, output).detail.startswith(detail)


def test_check_output_refuses_model_judge() -> None:
    with pytest.raises(TypeError):
        check_output(ModelJudgeCheck(criteria="is it good"), "text")


@pytest.mark.parametrize("schema", ["{not json", '{"type": 5}'], ids=["not-json", "bad-schema"])
def test_invalid_json_schema_is_the_checks_fault(schema: str) -> None:
    try:
        check = JsonSchemaCheck(json_schema=schema)
    except ValidationError:
        return  # rejected where it is written: fine
    result = check_output(check, '{"title": "t"}')
    assert not result.detail.startswith("the output") and "schema" in result.detail


@pytest.mark.parametrize("check_type", [RegexCheck, CitationsCheck])
def test_invalid_pattern_rejected_by_contract(check_type: type) -> None:
    with pytest.raises(ValidationError):
        check_type(pattern="([unclosed")


def test_citations_pattern_with_several_groups() -> None:
    try:
        check = CitationsCheck(pattern=r"\[(source|ref):\s*([^\]]+)\]")
    except ValidationError:
        return  # rejected where it is written: fine
    assert check_output(check, "A [ref: a.md]").passed


# --- verify_output: the decision -------------------------------------------------------------


async def verify(output: str, *checks: AcceptanceCheck) -> Verdict:
    request = VerifyRequest(step_id="draft", goal="g", output=output, checks=list(checks))
    return await ActivityEnvironment().run(verify_output, request)


async def test_all_pass_accepts() -> None:
    verdict = await verify("Temporal retries [source: a.md]", NonEmptyCheck(), RequiredTermsCheck(terms=["retries"]), CitationsCheck())
    assert verdict.step_id == "draft"
    assert verdict.decision is Decision.ACCEPT
    assert verdict.reasons == []
    assert [r.kind for r in verdict.results] == [CheckKind.NON_EMPTY, CheckKind.REQUIRED_TERMS, CheckKind.CITATIONS]
    assert all(r.passed for r in verdict.results)
    assert verdict.model_calls == 0 and verdict.cost_usd == 0.0


async def test_no_checks_accepts() -> None:
    assert (await verify("")).decision is Decision.ACCEPT


async def test_failing_refine_check_refines_with_reasons() -> None:
    verdict = await verify("short", NonEmptyCheck(), LengthCheck(min_chars=10), RegexCheck(pattern=r"\d"))
    assert verdict.decision is Decision.REFINE
    assert verdict.reasons == [
        "length: the output has 5 characters; at least 10 are needed",
        r"regex: the output does not match /\d/",
    ]
    assert [r.passed for r in verdict.results] == [True, False, False]  # every check runs, none short-circuits


async def test_failing_escalate_check_escalates() -> None:
    verdict = await verify(
        "no citations here",
        LengthCheck(min_chars=100),  # refine
        CitationsCheck(on_fail="escalate"),
    )
    assert verdict.decision is Decision.ESCALATE
    assert [r.split(":")[0] for r in verdict.reasons] == ["length", "citations"]


async def test_passing_escalate_check_does_not_escalate() -> None:
    verdict = await verify("ok", RegexCheck(pattern="ok", on_fail="escalate"), RegexCheck(pattern="missing"))
    assert verdict.decision is Decision.REFINE
    assert verdict.reasons == ["regex: the output does not match /missing/"]


@pytest.mark.parametrize(
    "check",
    [
        NonEmptyCheck(),
        LengthCheck(min_chars=1),
        JsonSchemaCheck(json_schema=SCHEMA),
        RequiredTermsCheck(terms=["x"]),
        CitationsCheck(),
        RegexCheck(pattern="x"),
    ],
)
async def test_reason_names_check_kind(check: AcceptanceCheck) -> None:
    verdict = await verify("   ", check)
    assert verdict.decision is Decision.REFINE
    assert len(verdict.reasons) == 1
    assert verdict.reasons[0].startswith(f"{check.type.value}: ")


# --- model-decided checks (judge and relevance) against a real local OpenAI-protocol server ----------


def judge_reply(content: dict | str) -> Reply:
    text = content if isinstance(content, str) else json.dumps(content)
    return Reply(body={
        "id": "j-1", "object": "chat.completion", "model": "judge-test",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60},
    })


async def judged(reply: dict | str, *checks: AcceptanceCheck, output: str = "Retries are safe with idempotency keys.") -> tuple[Verdict, list[Recorded]]:
    with ScriptedServer(lambda _: judge_reply(reply)) as server:
        request = VerifyRequest(
            step_id="draft", goal="Compare retries and idempotency for tool calls", instruction="Compare them.",
            output=output, checks=list(checks), judge=ModelSpec(provider=Provider.OPENAI, model="judge", base_url=server.base_url),
        )
        return await ActivityEnvironment().run(verify_output, request), server.requests


async def test_relevance_check_passes_an_on_topic_output_with_its_score() -> None:
    verdict, requests = await judged({"addresses_instruction": True, "score": 0.9, "reason": "on topic"}, RelevanceCheck(), NonEmptyCheck())
    assert verdict.decision is Decision.ACCEPT and verdict.model_calls == 1
    assert [r.score for r in verdict.results] == [0.9, 1.0] and verdict.score == pytest.approx(0.95)
    body = requests[0].body
    schema = json.loads(json.dumps(body["response_format"]))
    assert "addresses_instruction" in json.dumps(schema)
    assert "Compare retries and idempotency" in body["messages"][1]["content"] and 'untrusted="true"' in body["messages"][1]["content"]


@pytest.mark.parametrize(
    "reply",
    [
        {"addresses_instruction": False, "score": 0.9, "reason": "about summing squares"},  # says no: never above the bar
        {"addresses_instruction": True, "score": 0.2, "reason": "barely"},
        "not json at all",
        {"addresses_instruction": True, "reason": "no score"},
    ],
)
async def test_relevance_check_refines_an_off_topic_output(reply: dict | str) -> None:
    verdict, _ = await judged(reply, RelevanceCheck(min_score=0.5), output="def f(xs): return sum(x * x for x in xs)")
    assert verdict.decision is Decision.REFINE and verdict.reasons[0].startswith("relevance: ")
    assert verdict.score < 0.5


async def test_model_judge_scores_and_two_judged_checks_are_two_calls() -> None:
    verdict, requests = await judged(
        {"verdict": "pass", "score": 1.5, "reason": "good", "addresses_instruction": True},
        ModelJudgeCheck(criteria="mentions idempotency"), RelevanceCheck(),
    )
    assert verdict.decision is Decision.ACCEPT and verdict.model_calls == 2 and len(requests) == 2
    assert [r.score for r in verdict.results] == [1.0, 1.0]  # clamped to 0..1
    assert "mentions idempotency" in requests[0].body["messages"][0]["content"]
