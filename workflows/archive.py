"""A bounded `GoalResult` (workflow code): when the whole result would be larger than
`RESULT_INLINE_BYTES`, its full steps, plans and audit are stored in parts (`archive_content`, each part
under `PART_BYTES`), and the result keeps a compact selection (failed and escalated steps and the output
step first, at most `MAX_SHOWN_STEPS`, each without its call records), the last audit events and the
references. Whatever the number of steps, the result stays under Temporal's payload warning (512 KB)."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from contracts.approvals import ApprovalRequest
    from contracts.archive import ARCHIVE_CONTENT_ACTIVITY, LOAD_CONTENT_ACTIVITY, ContentRef, ContentText, ResultArchive
    from contracts.goal import ArchivePart, GoalResult, StepResult, StepStatus
    from core.hashing import sha256_text
    from core.options import ARCHIVE

RESULT_INLINE_BYTES = 192_000
PART_BYTES = 256_000
MAX_SHOWN_STEPS = 60
SHOWN_OUTPUT_CHARS = 300
SHOWN_AUDIT_EVENTS = 20


def compact_step(step: StepResult) -> StepResult:
    """A step as the compact result shows it: outcome, score, hashes and a short output, no call records."""
    output = step.output if len(step.output) <= SHOWN_OUTPUT_CHARS else step.output[:SHOWN_OUTPUT_CHARS] + "…"
    return step.model_copy(update={"output": output, "verdicts": [], "tool_calls": [], "model_calls": [], "candidates": []})


def _bytes(model: BaseModel) -> int:
    return len(model.model_dump_json().encode())  # bytes, not characters: payload limits are in bytes


def compact_approval(request: ApprovalRequest) -> ApprovalRequest:
    """An approval as the compact result shows it: who, what, the outcome; long arguments by their hash only."""
    if len(request.arguments_json) <= SHOWN_OUTPUT_CHARS:
        return request
    return request.model_copy(update={"arguments_json": f'{{"archived_arguments_sha256": "{sha256_text(request.arguments_json)}"}}'})


def split_parts(first: ArchivePart, steps: list[StepResult]) -> list[ArchivePart]:
    """`first` and then `steps`, in parts of bounded size."""
    parts = [first]
    size = _bytes(first)
    for step in steps:
        step_size = _bytes(step)
        if parts[-1].steps and size + step_size > PART_BYTES:
            parts.append(ArchivePart())
            size = 0
        parts[-1].steps.append(step)
        size += step_size
    return parts


def _parts(result: GoalResult) -> list[ArchivePart]:
    """The whole result's detail, in parts of bounded size (the first with the plans, audit and approvals)."""
    first = ArchivePart(plan=result.plan, plan_revisions=result.plan_revisions, audit=result.audit, approvals=result.approvals)
    return split_parts(first, result.steps)


async def bounded(result: GoalResult, output_step: str) -> GoalResult:
    """`result` as it is when small enough, else archived in parts with a compact view left in place."""
    if _bytes(result) <= RESULT_INLINE_BYTES:
        return result
    refs: list[ContentRef] = []
    for index, part in enumerate(_parts(result), start=1):
        refs.append(await archive_text(part.model_dump_json(), f"archive result part {index}"))
    notable = {s.step_id for s in result.steps if s.status in (StepStatus.FAILED, StepStatus.ESCALATED) or s.step_id == output_step}
    ordered = [s for s in result.steps if s.step_id in notable] + [s for s in result.steps if s.step_id not in notable]
    shown = [compact_step(s) for s in ordered[:MAX_SHOWN_STEPS]]
    return result.model_copy(update={
        "steps": shown, "plan": None, "plan_revisions": [], "audit": result.audit[-SHOWN_AUDIT_EVENTS:],
        "approvals": [compact_approval(a) for a in result.approvals],
        "archive": ResultArchive(parts=refs, steps_total=len(result.steps), steps_shown=len(shown)),
    })


def reassemble(result: GoalResult, parts: list[ArchivePart]) -> GoalResult:
    """The whole result again from its archived parts (used by clients: `starter.py result`)."""
    first = parts[0]
    return result.model_copy(update={
        "steps": [step for part in parts for step in part.steps], "plan": first.plan,
        "plan_revisions": first.plan_revisions, "audit": first.audit, "approvals": first.approvals or result.approvals,
        "archive": None,
    })


async def load_text(ref: ContentRef, summary: str) -> str:
    """Text from the content store (checked against its hash by the activity)."""
    loaded = await workflow.execute_activity(LOAD_CONTENT_ACTIVITY, ref, result_type=ContentText, summary=summary, **ARCHIVE.kwargs())
    return loaded.text


async def archive_text(text: str, summary: str, activity_id: str | None = None) -> ContentRef:
    """Text into the content store, by reference (`activity_id`: a name for the call, unique among open activities)."""
    return await workflow.execute_activity(ARCHIVE_CONTENT_ACTIVITY, ContentText(text=text), result_type=ContentRef,
                                           summary=summary, activity_id=activity_id, **ARCHIVE.kwargs())
