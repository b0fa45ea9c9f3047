"""Verification of step outputs and of the goal's success criteria (workflow code): one
`verify_output` activity per check round; a model-judged check counts against the budget."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.continuation import EntryKind, JournalEntry
    from contracts.goal import GoalRequest, StepProgress, StepResult, StepStatus
    from contracts.plan import PlanStep
    from contracts.verify import VERIFY_OUTPUT_ACTIVITY, AcceptanceCheck, Decision, Verdict, VerifyRequest, judged_count
    from core.options import VERIFIER
    from core.relevance import instruction_of
    from workflows.failures import BudgetExceeded
    from workflows.journal import Journal
    from workflows.ledger import GoalLedger


class Verification:
    def __init__(self, request: GoalRequest, ledger: GoalLedger, progress: dict[str, StepProgress], journal: Journal) -> None:
        self.request = request
        self.ledger = ledger
        self.progress = progress
        self.journal = journal

    async def verify(self, step_id: str, instruction: str, output: str, checks: list[AcceptanceCheck], summary: str) -> Verdict:
        replayed = self.journal.replayed(step_id, EntryKind.VERIFY)
        if replayed and replayed.verdict:  # a resumed step's verification: charged before the goal continued as new
            return replayed.verdict
        verdict = await self._verify(step_id, instruction, output, checks, summary)
        self.journal.record(step_id, JournalEntry(kind=EntryKind.VERIFY, verdict=verdict))
        return verdict

    async def _verify(self, step_id: str, instruction: str, output: str, checks: list[AcceptanceCheck], summary: str) -> Verdict:
        judged = judged_count(checks)
        for reserved in range(judged):
            try:
                self.ledger.before_model_call()  # a model-judged check is a model call: it obeys the budget
            except BudgetExceeded:
                self.ledger.usage.model_calls -= reserved  # release what this verification had reserved
                raise
        verdict = await workflow.execute_activity(
            VERIFY_OUTPUT_ACTIVITY,
            VerifyRequest(
                step_id=step_id, goal=self.request.goal, instruction=instruction, output=output,
                checks=checks, judge=self.request.models.verifier,
            ),
            result_type=Verdict,
            summary=summary,
            **VERIFIER.kwargs(),
        )
        if verdict.model_calls or judged:
            self.ledger.usage.add_model(verdict.usage, verdict.cost_usd, calls=verdict.model_calls - judged)
        return verdict

    async def accepted(self, step: PlanStep, output: str, result: StepResult) -> bool:
        """Verify a step's output; sets the step's status when accepted or escalated."""
        if not step.checks:
            result.status = StepStatus.COMPLETED
            return True
        self.progress[step.id].status = StepStatus.VERIFYING
        instruction = instruction_of(step) or f"call {step.invocation.tool}"
        verdict = await self.verify(step.id, instruction, output, step.checks, f"{step.id}: verify attempt {result.attempts}")
        result.verdicts.append(verdict)
        result.score = self.progress[step.id].score = verdict.score
        if verdict.decision is Decision.ACCEPT:
            result.status = StepStatus.COMPLETED
            return True
        if verdict.decision is Decision.ESCALATE:
            result.status = StepStatus.ESCALATED
            result.error = "escalated by the verifier: " + "; ".join(verdict.reasons)
        return False
