"""Explore steps (workflow code): every variant (another instruction, role, temperature or model) runs
as its own agent loop at the same time; each output is scored by the step's checks (`verify_output`),
and the best is kept: accepted before not, then the higher score, then the earlier variant. Candidates
share the goal's budget: a candidate the budget stops is reported as such and the pick is made among the
finished ones. Every candidate, its score and the reason for the pick are in the step result, in `status`
and (as `<step>/<label>` model-call activity ids) in the history.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from contracts.goal import CandidateResult, StepResult, StepStatus
    from contracts.plan import AgentStep, ExploreStep, ExploreVariant
    from contracts.verify import Decision
    from core.hashing import sha256_text
    from workflows.failures import BudgetExceeded, StepEscalated, StepFailed, failure_message
    from workflows.steps.agent import AgentStepRunner
    from workflows.steps.base import StepContext


class ExploreStepRunner:
    def __init__(self, context: StepContext, agent: AgentStepRunner) -> None:
        self.context = context
        self.agent = agent

    async def run(self, step: ExploreStep, outputs: Mapping[str, str], result: StepResult) -> None:
        progress = self.context.progress[step.id]
        result.attempts = progress.attempt = 1
        runs = await asyncio.gather(*(self._candidate(step, variant, outputs) for variant in step.variants))
        for _, sub, _ in runs:  # every candidate's calls are the step's
            result.turns += sub.turns
            result.model_calls += sub.model_calls
            result.tool_calls += sub.tool_calls
            result.verdicts += sub.verdicts
        result.candidates = progress.candidates = [candidate for candidate, _, _ in runs]
        finished = [(index, candidate, output) for index, (candidate, _, output) in enumerate(runs) if candidate.score is not None]
        if not finished:
            errors = "; ".join(f"{c.label}: {c.error}" for c in result.candidates)
            if all((c.error or "").startswith("BudgetExceeded") for c in result.candidates):
                raise BudgetExceeded(f"no candidate finished: {errors}")
            raise StepFailed(f"no candidate finished: {errors}")
        index, best, output = max(finished, key=lambda f: (f[1].decision is Decision.ACCEPT, f[1].score, -f[0]))
        others = ", ".join(f"{c.label}: {c.score:.2f}" if c.score is not None else f"{c.label}: {c.error}"
                           for c in result.candidates if c is not best)
        result.pick_reason = f"kept {best.label!r} ({best.decision.value if best.decision else ''}, score {best.score:.2f}); others: {others}"
        result.output, result.score, progress.score = output or "", best.score, best.score
        if best.decision is Decision.ACCEPT:
            result.status = StepStatus.COMPLETED
        elif best.decision is Decision.ESCALATE:
            result.status, result.error = StepStatus.ESCALATED, f"escalated by the verifier: {'; '.join(best.reasons)}"
        else:
            result.status, result.error = StepStatus.FAILED, f"no candidate passed verification; best: {'; '.join(best.reasons)}"

    def _variant_step(self, step: ExploreStep, variant: ExploreVariant) -> AgentStep:
        return AgentStep(
            id=step.id, role=variant.role or step.role, instruction=variant.instruction or step.instruction,
            depends_on=step.depends_on, tools=step.tools, max_turns=step.max_turns, code_blocks=step.code_blocks, max_attempts=1, cache=step.cache,
            max_model_calls=step.max_model_calls, max_tool_calls=step.max_tool_calls,  # the step's limits hold per candidate
        )

    async def _candidate(
        self, step: ExploreStep, variant: ExploreVariant, outputs: Mapping[str, str]
    ) -> tuple[CandidateResult, StepResult, str | None]:
        """(what the candidate scored, the calls it made, its output); failures are the candidate's, not the step's."""
        attempt = self._variant_step(step, variant)
        sub = StepResult(step_id=step.id, role=attempt.role, status=StepStatus.RUNNING)
        candidate = CandidateResult(label=variant.label, role=attempt.role, status=StepStatus.RUNNING)
        spec = variant.model or step.model or self.context.request.models.executor
        if variant.temperature is not None:
            spec = spec.model_copy(update={"temperature": variant.temperature})
        try:
            messages = await self.agent.opening(attempt, outputs, sub)
            output = await self.agent.turns(attempt, messages, sub, spec=spec, label=variant.label)
            verdict = await self.context.verification.verify(
                step.id, attempt.instruction, output, step.checks, f"{step.id}/{variant.label}: score"
            )
        except (BudgetExceeded, ActivityError, StepEscalated, StepFailed) as err:
            name = "BudgetExceeded: " if isinstance(err, BudgetExceeded) else ""
            candidate.status, candidate.error = StepStatus.FAILED, name + failure_message(err)
            candidate.model_calls = len(sub.model_calls)
            return candidate, sub, None
        sub.verdicts.append(verdict)
        candidate.status = StepStatus.COMPLETED
        candidate.score, candidate.decision, candidate.reasons = verdict.score, verdict.decision, verdict.reasons
        candidate.output_sha256, candidate.model_calls = sha256_text(output), len(sub.model_calls)
        return candidate, sub, output
