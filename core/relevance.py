"""Lexical grounding: does a piece of text share content words with another? Cheap and deterministic,
so a plan whose steps have nothing to do with the goal is caught even when the only model at hand is
too small to judge relevance reliably. Words are compared by a short stem (`idempotent` ~ `idempotency`)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from contracts.plan import PlanStep

_STEM = 5
_STOPWORDS = frozenset(
    "about above after again also among and any are because been before being below between both but can could did "
    "does doing down during each few for from further had has have having her here hers him his how into its itself "
    "just more most must not now off once only other our out over own same she should some such than that the their "
    "them then there these they this those through too under until very was were what when where which while who "
    "whom why will with would you your make write give list step steps short brief explain describe using use".split()
)


def content_stems(text: str) -> set[str]:
    """Stems of the words that carry meaning (4+ letters, not a stopword)."""
    words = re.findall(r"[a-z][a-z0-9]{3,}", text.lower())
    return {w[:_STEM] for w in words if w not in _STOPWORDS}


def instruction_of(step: PlanStep) -> str:
    """What the step is asked to do: an agent's instruction, a subagent's goal, what a tool step's model fills
    ('' for a plain tool step)."""
    return getattr(step, "instruction", None) or getattr(step, "goal", None) or getattr(step, "fill_instruction", None) or ""


def ungrounded_steps(goal: str, steps: Sequence[PlanStep]) -> list[str]:
    """Problems for steps that trace to no part of the goal: a step must share a content word with the
    goal or with a step it depends on (so "review the draft" after "draft a brief on X" traces through it)."""
    goal_stems = content_stems(goal)
    if not goal_stems:
        return []  # a goal with no content words gives nothing to check against
    by_id = {step.id: step for step in steps}
    problems = []
    for step in steps:
        stems = content_stems(instruction_of(step))
        through = set().union(*(content_stems(instruction_of(by_id[d])) for d in step.depends_on if d in by_id))
        if not stems & (goal_stems | through):
            problems.append(
                f"step {step.id!r} does not address the goal: its instruction shares no words with the goal"
                f" ({', '.join(sorted(goal_stems))}) or with the steps it uses; say what part of the goal it does"
            )
    return problems
