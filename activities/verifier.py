"""`verify_output`: check a step's output against its acceptance checks and return a `Verdict`.

Deterministic checks run first; a `model_judge` check asks the verifier model for a constrained
pass/fail JSON verdict. Any failing check decides refine (or escalate, if the check says so).
"""

from __future__ import annotations

import json
import re

import jsonschema
from temporalio import activity

import settings
from activities import metrics
from activities.providers.base import complete
from contracts.llm import ChatMessage, ChatRole, ModelRequest, ModelRole
from contracts.sandbox import SandboxRun
from core.untrusted import UNTRUSTED_NOTE, step_output
from contracts.verify import (
    VERIFY_OUTPUT_ACTIVITY,
    AcceptanceCheck,
    CheckResult,
    CitationsCheck,
    Decision,
    JsonSchemaCheck,
    JudgedCheck,
    LengthCheck,
    ModelJudgeCheck,
    NonEmptyCheck,
    RegexCheck,
    RelevanceCheck,
    RequiredTermsCheck,
    TestsCheck,
    Verdict,
    VerifyRequest,
)

JUDGE_SCHEMA = {
    "type": "object",
    "properties": {
        "verdict": {"type": "string", "enum": ["pass", "fail"]},
        "score": {"type": "number"},
        "reason": {"type": "string", "maxLength": 200},
    },
    "required": ["verdict", "score", "reason"],
}
RELEVANCE_SCHEMA = {
    "type": "object",
    "properties": {
        "addresses_instruction": {"type": "boolean"},
        "score": {"type": "number"},
        "reason": {"type": "string", "maxLength": 200},
    },
    "required": ["addresses_instruction", "score", "reason"],
}


def check_output(check: AcceptanceCheck, output: str) -> CheckResult:
    """Run one deterministic check (not `model_judge`)."""
    if isinstance(check, NonEmptyCheck):
        ok = bool(output.strip())
        return CheckResult(kind=check.type, passed=ok, detail="" if ok else "the output is empty")
    if isinstance(check, LengthCheck):
        size = len(output.strip())
        if size < check.min_chars:
            return CheckResult(kind=check.type, passed=False, detail=f"the output has {size} characters; at least {check.min_chars} are needed")
        if check.max_chars is not None and size > check.max_chars:
            return CheckResult(kind=check.type, passed=False, detail=f"the output has {size} characters; at most {check.max_chars} are allowed")
        return CheckResult(kind=check.type, passed=True)
    if isinstance(check, JsonSchemaCheck):
        try:
            jsonschema.validate(json.loads(output), json.loads(check.json_schema))
        except json.JSONDecodeError as err:
            return CheckResult(kind=check.type, passed=False, detail=f"the output is not JSON: {err.msg}")
        except jsonschema.ValidationError as err:
            return CheckResult(kind=check.type, passed=False, detail=f"the output does not match the schema: {err.message}")
        return CheckResult(kind=check.type, passed=True)
    if isinstance(check, RequiredTermsCheck):
        haystack = output if check.case_sensitive else output.lower()
        missing = [t for t in check.terms if (t if check.case_sensitive else t.lower()) not in haystack]
        return CheckResult(kind=check.type, passed=not missing, detail=f"missing required terms: {missing}" if missing else "")
    if isinstance(check, CitationsCheck):
        cited = [(m.group(1) if m.re.groups else m.group(0)).strip() for m in re.finditer(check.pattern, output)]
        if len(cited) < check.min_count:
            return CheckResult(kind=check.type, passed=False, detail=f"{len(cited)} citations found; at least {check.min_count} are needed")
        unknown = [c for c in cited if check.known_sources and c not in check.known_sources]
        if unknown:
            return CheckResult(kind=check.type, passed=False, detail=f"citations of unknown sources: {sorted(set(unknown))}")
        return CheckResult(kind=check.type, passed=True)
    if isinstance(check, RegexCheck):
        found = re.search(check.pattern, output, re.MULTILINE) is not None
        ok = found == check.must_match
        detail = "" if ok else (f"the output does not match /{check.pattern}/" if check.must_match else f"the output must not match /{check.pattern}/")
        return CheckResult(kind=check.type, passed=ok, detail=detail)
    raise TypeError(f"not a deterministic check: {check!r}")


TEST_REPORT_CHARS = 1_500


def tests_result(check: TestsCheck, run: SandboxRun | None) -> CheckResult:
    """A `tests` check from its sandboxed run: exit 0 passes; otherwise the reason ends with what the tests printed."""
    if run is None:
        return CheckResult(kind=check.type, passed=False, detail="the tests did not run")
    if run.passed:
        return CheckResult(kind=check.type, passed=True)
    if run.exit_code is None:
        return CheckResult(kind=check.type, passed=False, detail=f"the tests could not run: {run.stderr}"[:TEST_REPORT_CHARS])
    stopped = f", stopped by the {run.killed_by.value} limit" if run.killed_by else ""
    printed = (run.stdout.rstrip() + "\n" + run.stderr.rstrip()).strip()
    return CheckResult(kind=check.type, passed=False, detail=f"the tests failed (exit code {run.exit_code}{stopped}): {printed[-TEST_REPORT_CHARS:]}")


def _judge_prompt(request: VerifyRequest, check: JudgedCheck) -> tuple[str, dict]:
    """(question, reply schema) for a model-decided check."""
    if isinstance(check, RelevanceCheck):
        return (
            "Decide whether the OUTPUT addresses the TASK and serves the GOAL (not merely whether it is well written). "
            "Reply with JSON: addresses_instruction true or false, a score from 0 (off-topic) to 1 (fully on-topic), "
            "and a short reason.",
            RELEVANCE_SCHEMA,
        )
    assert isinstance(check, ModelJudgeCheck)
    return (
        f"Decide whether the OUTPUT meets the CRITERIA: {check.criteria}\n"
        "Reply with JSON: verdict pass or fail, a score from 0 (not at all) to 1 (fully), and a short reason.",
        JUDGE_SCHEMA,
    )


def _read_judgement(check: JudgedCheck, content: str) -> CheckResult:
    """The judge's JSON reply as a check result; a reply that is not the asked-for JSON fails the check."""
    try:
        judged = json.loads(content)
        raw_score = float(judged["score"])
        reason = str(judged.get("reason", ""))
        agrees = judged["addresses_instruction"] is True if isinstance(check, RelevanceCheck) else judged["verdict"] == "pass"
    except (json.JSONDecodeError, TypeError, KeyError, ValueError):
        return CheckResult(kind=check.type, passed=False, score=0.0, detail="the judge's reply was not a JSON verdict")
    score = min(1.0, max(0.0, raw_score))
    if isinstance(check, RelevanceCheck):
        passed = agrees and score >= check.min_score
        detail = "" if passed else f"off-topic (score {score:.2f}, needs {check.min_score:.2f}): {reason}"
        # A judge that says "does not address" cannot score the output above the bar.
        return CheckResult(kind=check.type, passed=passed, score=score if agrees else min(score, check.min_score / 2), detail=detail)
    return CheckResult(kind=check.type, passed=agrees, score=score if agrees else min(score, 0.5), detail="" if agrees else reason)


async def _judge(request: VerifyRequest, check: JudgedCheck, verdict: Verdict) -> CheckResult:
    model = settings.resolve_model(ModelRole.VERIFIER, request.judge)
    question, schema = _judge_prompt(request, check)
    messages = [
        ChatMessage(role=ChatRole.SYSTEM, content=f"You review work. {question} {UNTRUSTED_NOTE}"),
        ChatMessage(
            role=ChatRole.USER,
            # The output under review is data: it cannot tell the judge what to decide.
            content=f"GOAL: {request.goal}\nTASK: {request.instruction}\n"
            f"OUTPUT:\n{step_output(request.step_id, request.output)}",
        ),
    ]
    response = await complete(
        ModelRequest(role=ModelRole.VERIFIER, spec=request.judge, messages=messages, response_schema_json=json.dumps(schema)),
        model,
    )
    verdict.model_calls += 1
    verdict.usage.prompt_tokens += response.usage.prompt_tokens
    verdict.usage.completion_tokens += response.usage.completion_tokens
    verdict.cost_usd += response.cost_usd
    return _read_judgement(check, response.message.content)


@activity.defn(name=VERIFY_OUTPUT_ACTIVITY)
async def verify_output(request: VerifyRequest) -> Verdict:
    """Check a step's output; accept, or say why it must be refined or escalated."""
    verdict = Verdict(step_id=request.step_id, decision=Decision.ACCEPT)
    escalate = False
    test_runs = iter(request.test_runs)
    for check in request.checks:
        if isinstance(check, JudgedCheck):
            result = await _judge(request, check, verdict)
        elif isinstance(check, TestsCheck):
            result = tests_result(check, next(test_runs, None))
        else:
            result = check_output(check, request.output)
        verdict.results.append(result)
        if not result.passed:
            verdict.reasons.append(f"{result.kind.value}: {result.detail}")
            escalate = escalate or check.on_fail == "escalate"
    if verdict.results:
        verdict.score = sum(r.score or 0.0 for r in verdict.results) / len(verdict.results)
    if verdict.reasons:
        verdict.decision = Decision.ESCALATE if escalate else Decision.REFINE
    metrics.verdict(verdict)
    return verdict
