"""How a step ends early (workflow code). Expected outcomes are these exceptions, turned into a step
status by `StepExecutor`; anything else is a bug and fails the workflow task, so a fixed worker can
resume the goal from its history."""

from __future__ import annotations

from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError


class BudgetExceeded(Exception):
    """The next call would break the goal's budget."""


class StepFailed(Exception):
    """A step cannot finish (e.g. its declared tool call failed or does not render)."""


class StepEscalated(Exception):
    """A step needs a human (e.g. an approval request expired into escalation)."""


class WorkflowCodeError(RuntimeError):
    """A bug in workflow code; raised so it fails the workflow task (retried) rather than the run."""


def failure_message(err: BaseException) -> str:
    """`Type: message` of an activity's or child workflow's typed failure, else the error's text."""
    cause = err.cause if isinstance(err, (ActivityError, ChildWorkflowError)) else err
    if isinstance(cause, ApplicationError) and cause.type:
        return f"{cause.type}: {cause.message}"
    return str(cause or err)
