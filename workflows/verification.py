"""Verification of step outputs and of the goal's success criteria (workflow code): one
`verify_output` activity per check round; a model-judged check counts against the budget."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from temporalio.exceptions import ActivityError

    from contracts.continuation import EntryKind, JournalEntry
    from contracts.goal import GoalRequest, StepProgress, StepResult, StepStatus
    from contracts.llm import ModelRole
    from contracts.plan import PlanStep
    from contracts.sandbox import RUN_CHECK_TESTS_ACTIVITY, CheckTestsRequest, SandboxRun
    from contracts.verify import VERIFY_OUTPUT_ACTIVITY, AcceptanceCheck, Decision, TestsCheck, Verdict, VerifyRequest, judged_count
    from core.options import SANDBOX, SANDBOX_MARGIN, VERIFIER
    from core.relevance import instruction_of
    from workflows.events import EventLog
    from workflows.failures import BudgetExceeded, failure_message
    from workflows.journal import Journal
    from workflows.ledger import GoalLedger
    from workflows.routing import SandboxRoute


class Verification:
    def __init__(
        self, request: GoalRequest, ledger: GoalLedger, progress: dict[str, StepProgress], journal: Journal, events: EventLog,
        route: SandboxRoute | None = None,
    ) -> None:
        self.events = events
        self.request = request
        self.ledger = ledger
        self.progress = progress
        self.journal = journal
        self.route = route or SandboxRoute()  # `tests` checks run their code on the sandbox task queue

    async def verify(self, step_id: str, instruction: str, output: str, checks: list[AcceptanceCheck], summary: str) -> Verdict:
        replayed = self.journal.replayed(step_id, EntryKind.VERIFY)
        if replayed and replayed.verdict:  # a resumed step's verification: charged before the goal continued as new
            return replayed.verdict
        verdict = await self._verify(step_id, instruction, output, checks, summary)
        self.journal.record(step_id, JournalEntry(kind=EntryKind.VERIFY, verdict=verdict))
        self.events.verdict(step_id, verdict)
        return verdict

    async def _verify(self, step_id: str, instruction: str, output: str, checks: list[AcceptanceCheck], summary: str) -> Verdict:
        judged = judged_count(checks)
        for reserved in range(judged):
            try:
                self.ledger.before_model_call()  # a model-judged check is a model call: it obeys the budget
            except BudgetExceeded:
                self.ledger.usage.model_calls -= reserved  # release what this verification had reserved
                raise
        test_runs = [await self._run_tests(step_id, output, check) for check in checks if isinstance(check, TestsCheck)]
        try:
            verdict = await workflow.execute_activity(
                VERIFY_OUTPUT_ACTIVITY,
                VerifyRequest(
                    step_id=step_id, goal=self.request.goal, instruction=instruction, output=output,
                    checks=checks, judge=self.request.models.verifier, test_runs=test_runs,
                ),
                result_type=Verdict,
                summary=summary,
                **VERIFIER.within(self.ledger.time_left()).kwargs(),  # judge calls end by the goal's deadline too
            )
        except ActivityError as err:
            self.ledger.cut_off(err)  # cut off by the goal's deadline: that is why, and the goal ends
            raise
        if verdict.model_calls or judged:
            self.events.model_calls(step_id, ModelRole.VERIFIER, self.request.models.verifier, verdict.model_calls, verdict.usage,
                                    verdict.cost_usd)
            self.ledger.charge_model(verdict.usage, verdict.cost_usd, calls=verdict.model_calls - judged)
        return verdict

    async def _run_tests(self, step_id: str, output: str, check: TestsCheck) -> SandboxRun:
        """One `tests` check's code against the output, in the sandbox (its own activity and timeout); a run that
        could not happen is a run that did not pass, never an accepted output."""
        try:
            return await workflow.execute_activity(
                RUN_CHECK_TESTS_ACTIVITY,
                CheckTestsRequest(step_id=step_id, output=output, code=check.code or "", limits=check.limits),
                result_type=SandboxRun,
                summary=f"{step_id}: run tests",
                **SANDBOX.with_overrides(start_to_close_timeout=timedelta(seconds=check.limits.wall_seconds) + SANDBOX_MARGIN).kwargs(),
                **self.route.options(),
            )
        except ActivityError as err:
            return SandboxRun(exit_code=None, stderr=failure_message(err))

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
