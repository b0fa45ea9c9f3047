"""Contracts for verification: acceptance checks (a discriminated union) and the `Verdict`."""

import json
import re
from enum import StrEnum
from typing import Annotated, Literal

import jsonschema
from pydantic import BaseModel, Field, field_validator, model_validator

from contracts.llm import ModelSpec, TokenUsage
from contracts.sandbox import SandboxLimits, SandboxRun


class CheckKind(StrEnum):
    NON_EMPTY = "non_empty"
    LENGTH = "length"
    JSON_SCHEMA = "json_schema"
    REQUIRED_TERMS = "required_terms"
    CITATIONS = "citations"
    REGEX = "regex"
    MODEL_JUDGE = "model_judge"
    RELEVANCE = "relevance"
    TESTS = "tests"


class _Check(BaseModel):
    on_fail: Literal["refine", "escalate"] = Field(
        default="refine", description="refine: send back to the executor; escalate: stop for a human."
    )


class NonEmptyCheck(_Check):
    type: Literal[CheckKind.NON_EMPTY] = CheckKind.NON_EMPTY


class LengthCheck(_Check):
    type: Literal[CheckKind.LENGTH] = CheckKind.LENGTH
    min_chars: int = Field(default=0, ge=0)
    max_chars: int | None = Field(default=None, gt=0)


class JsonSchemaCheck(_Check):
    type: Literal[CheckKind.JSON_SCHEMA] = CheckKind.JSON_SCHEMA
    json_schema: str

    @field_validator("json_schema")
    @classmethod
    def _is_a_schema(cls, value: str) -> str:
        try:
            schema = json.loads(value)
            jsonschema.validators.validator_for(schema).check_schema(schema)
        except (json.JSONDecodeError, jsonschema.SchemaError, TypeError) as err:
            raise ValueError(f"json_schema is not a valid JSON schema: {err}") from err
        return value


def _compiles(value: str) -> str:
    try:
        re.compile(value)
    except re.error as err:
        raise ValueError(f"invalid regular expression: {err}") from err
    return value


class RequiredTermsCheck(_Check):
    type: Literal[CheckKind.REQUIRED_TERMS] = CheckKind.REQUIRED_TERMS
    terms: list[str] = Field(min_length=1)
    case_sensitive: bool = False


class CitationsCheck(_Check):
    """At least `min_count` citations like `[source: file.md]`; with `known_sources`, each must be one."""

    type: Literal[CheckKind.CITATIONS] = CheckKind.CITATIONS
    min_count: int = Field(default=1, ge=1)
    pattern: str = r"\[source:\s*([^\]]+)\]"
    known_sources: list[str] = Field(default_factory=list)

    _pattern_compiles = field_validator("pattern")(_compiles)


class RegexCheck(_Check):
    type: Literal[CheckKind.REGEX] = CheckKind.REGEX
    pattern: str
    must_match: bool = True

    _pattern_compiles = field_validator("pattern")(_compiles)


class JudgedCheck(_Check):
    """A check a model decides: each one is a model call, counted against the goal's budget."""


class ModelJudgeCheck(JudgedCheck):
    """A model judges the output against `criteria` (constrained to a pass/fail JSON verdict with a score)."""

    type: Literal[CheckKind.MODEL_JUDGE] = CheckKind.MODEL_JUDGE
    criteria: str


class RelevanceCheck(JudgedCheck):
    """A model confirms the output addresses the step's instruction and the goal (score 0..1)."""

    type: Literal[CheckKind.RELEVANCE] = CheckKind.RELEVANCE
    min_score: float = Field(default=0.5, ge=0.0, le=1.0)


class TestsCheck(_Check):
    """Test code run against the output in the sandbox (`import solution` is the Python in the output, `output.txt`
    the output itself); it passes when the test program exits 0. `script` names a file beside the playbook, which
    the planner reads into `code`, so the test code is in the plan (and the history) before it runs."""

    __test__ = False  # not a pytest class, whatever its name
    type: Literal[CheckKind.TESTS] = CheckKind.TESTS
    code: str | None = Field(default=None, min_length=1, max_length=200_000)
    script: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_./-]{0,199}$", description="A file under the playbook's folder.")
    limits: SandboxLimits = Field(default_factory=lambda: SandboxLimits(wall_seconds=20, cpu_seconds=20))

    @model_validator(mode="after")
    def _has_code(self) -> "TestsCheck":
        if self.code is None and self.script is None:
            raise ValueError("a tests check needs `code` or a `script`")
        return self


AcceptanceCheck = Annotated[
    NonEmptyCheck
    | LengthCheck
    | JsonSchemaCheck
    | RequiredTermsCheck
    | CitationsCheck
    | RegexCheck
    | ModelJudgeCheck
    | RelevanceCheck
    | TestsCheck,
    Field(discriminator="type"),
]


def judged_count(checks: list[AcceptanceCheck]) -> int:
    """How many model calls verifying these checks takes."""
    return sum(isinstance(check, JudgedCheck) for check in checks)


class Decision(StrEnum):
    ACCEPT = "accept"
    REFINE = "refine"
    ESCALATE = "escalate"


class CheckResult(BaseModel):
    kind: CheckKind
    passed: bool
    detail: str = ""
    score: float | None = Field(default=None, ge=0.0, le=1.0, description="0..1; a deterministic check scores 1 or 0.")

    @model_validator(mode="after")
    def _score_follows_pass(self) -> "CheckResult":
        if self.score is None:
            self.score = 1.0 if self.passed else 0.0
        return self


VERIFY_OUTPUT_ACTIVITY = "verify_output"  # VerifyRequest -> Verdict


class VerifyRequest(BaseModel):
    """Input of the `verify_output` activity."""

    step_id: str
    goal: str
    instruction: str = ""
    output: str
    checks: list[AcceptanceCheck]
    judge: ModelSpec = Field(default_factory=ModelSpec)
    test_runs: list[SandboxRun] = Field(default_factory=list, description="The sandboxed runs of the `tests` checks, in their order.")


class Verdict(BaseModel):
    """Output of the `verify_output` activity."""

    step_id: str
    decision: Decision
    score: float = Field(default=1.0, ge=0.0, le=1.0, description="Mean of the checks' scores (1 without checks).")
    reasons: list[str] = Field(default_factory=list)
    results: list[CheckResult] = Field(default_factory=list)
    usage: TokenUsage = Field(default_factory=TokenUsage)
    model_calls: int = 0
    cost_usd: float = 0.0
