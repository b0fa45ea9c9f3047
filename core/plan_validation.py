"""Semantic plan rules beyond the JSON schema, shared by playbook loading and the LLM planner.

A schema-valid plan from a small model can still be nonsense (unknown tools, cycles, publishing
first); these rules turn such a plan into a list of problems the planner can feed back for repair.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from contracts.plan import AgentStep, ExploreStep, PlanStep, SubagentStep, ToolInvocation, ToolStep
from contracts.tools import SideEffect
from core.templating import referenced_outputs, referenced_steps
from core.tools import TOOLS


def _tools_of(step: PlanStep) -> list[str]:
    """Tools the step itself calls (a subagent's child plans and checks its own)."""
    if isinstance(step, ToolStep):
        return [step.invocation.tool]
    if isinstance(step, SubagentStep):
        return []
    if isinstance(step, ExploreStep):
        return list(step.tools)
    return list(step.tools) + [p.tool for p in step.prefetch]


def tools_named(steps: Sequence[PlanStep]) -> list[str]:
    """Every tool the steps name, once each, in order (what a plan needs the catalogue to know)."""
    return list(dict.fromkeys(tool for step in steps for tool in _tools_of(step)))


def _invocations_of(step: PlanStep) -> list[ToolInvocation]:
    if isinstance(step, ToolStep):
        return [step.invocation]
    return list(step.prefetch) if isinstance(step, AgentStep) else []


def templates_of(step: PlanStep) -> list[str]:
    """Every template string a step renders (validation checks them; the scheduler loads whole outputs they name)."""
    if isinstance(step, ToolStep):
        return [step.invocation.arguments_json, step.fill_instruction]
    if isinstance(step, SubagentStep):
        return [step.goal]
    if isinstance(step, ExploreStep):
        return [step.instruction] + [v.instruction for v in step.variants if v.instruction]
    return [step.instruction] + [p.arguments_json for p in step.prefetch]


def _fill_problems(step: ToolStep) -> list[str]:
    """`model_fills` must name arguments of the tool that the step does not declare itself."""
    spec = TOOLS.get(step.invocation.tool)
    if spec is None:
        return []  # an unknown tool is reported as such; an MCP tool's fields are checked against its listed schema when the step runs
    fields = set(spec.args_model.model_fields)
    try:
        declared = set(json.loads(step.invocation.arguments_json))
    except (json.JSONDecodeError, TypeError):
        declared = set()  # reported as arguments that are not a JSON object
    problems = [f"step {step.id!r}: {step.invocation.tool!r} has no argument {name!r} to fill"
                for name in step.model_fills if name not in fields]
    problems += [f"step {step.id!r}: argument {name!r} is both declared and filled by the model"
                 for name in step.model_fills if name in declared]
    if not step.fill_instruction.strip():
        problems.append(f"step {step.id!r}: model_fills needs a fill_instruction saying what to fill in")
    return problems


def find_cycle(steps: Sequence[PlanStep]) -> list[str] | None:
    """Step ids left over by a topological sort (i.e. on or behind a cycle), or None if acyclic."""
    remaining = {s.id: {d for d in s.depends_on if d != s.id} for s in steps}
    while remaining:
        ready = [sid for sid, deps in remaining.items() if not deps & remaining.keys()]
        if not ready:
            return sorted(remaining)
        for sid in ready:
            del remaining[sid]
    return None


def plan_problems(
    steps: Sequence[PlanStep],
    tool_effects: Mapping[str, SideEffect],
    *,
    output_step: str | None = None,
    allowed_roles: set[str] | None = None,
    effects_last: bool = False,
) -> list[str]:
    """Everything wrong with a step graph; empty means valid.

    `effects_last` requires steps that write or destroy to have no dependents (LLM plans: act last).
    """
    problems: list[str] = []
    ids = [s.id for s in steps]
    seen: set[str] = set()
    for sid in ids:
        if sid in seen:
            problems.append(f"step id {sid!r} is used twice")
        seen.add(sid)
    dependents: dict[str, list[str]] = {sid: [] for sid in ids}
    for step in steps:
        if allowed_roles is not None and step.role not in allowed_roles:
            problems.append(f"step {step.id!r}: role {step.role!r} is not one of {sorted(allowed_roles)}")
        for dep in step.depends_on:
            if dep == step.id:
                problems.append(f"step {step.id!r} depends on itself")
            elif dep not in seen:
                problems.append(f"step {step.id!r} depends on unknown step {dep!r}")
            else:
                dependents[dep].append(step.id)
        for tool in _tools_of(step):
            if tool not in tool_effects:
                problems.append(f"step {step.id!r} uses unknown tool {tool!r}")
        for invocation in _invocations_of(step):
            try:
                arguments = json.loads(invocation.arguments_json)
            except json.JSONDecodeError as err:
                arguments, reason = None, f"not JSON ({err.msg})"
            else:
                reason = "not a JSON object"
            if not isinstance(arguments, dict):
                problems.append(f"step {step.id!r}: arguments for {invocation.tool!r} are {reason}")
        for template in templates_of(step):
            for ref in sorted(referenced_steps(template)):
                if ref not in step.depends_on:
                    problems.append(f"step {step.id!r} uses the output of {ref!r} without depending on it")
        if isinstance(step, AgentStep) and not step.instruction.strip():
            problems.append(f"step {step.id!r} has an empty instruction")
        if isinstance(step, ToolStep) and step.model_fills:
            problems += _fill_problems(step)
        if isinstance(step, SubagentStep) and referenced_outputs(step.goal):
            problems.append(f"step {step.id!r}: a subagent's goal cannot include other steps' output (untrusted text would"
                            " become the child's instruction); give it its own goal")
        if isinstance(step, ExploreStep) and not step.checks:
            problems.append(f"step {step.id!r} explores without checks: nothing would score its candidates")
    fallbacks = {s.fallback for s in steps if s.fallback and s.fallback != s.id}
    for step in steps:
        if step.fallback is not None and (step.fallback == step.id or step.fallback not in seen):
            problems.append(f"step {step.id!r}: fallback {step.fallback!r} is not another step of the plan")
        leaning = sorted(set(step.depends_on) & fallbacks)
        if leaning:
            problems.append(f"step {step.id!r} depends on fallback steps {leaning}, which run only when another step fails;"
                            " depend on the step they stand in for")
    cycle = find_cycle(steps)
    if cycle:
        problems.append(f"dependencies form a cycle among {cycle}")
    if effects_last:
        for step in steps:
            acting = [t for t in _tools_of(step) if tool_effects.get(t, SideEffect.READ) is not SideEffect.READ]
            if acting and dependents.get(step.id):
                problems.append(
                    f"step {step.id!r} uses {acting} (changes the world) but steps {dependents[step.id]} come after it;"
                    " actions must come last"
                )
    if output_step is not None and output_step not in seen:
        problems.append(f"output_step {output_step!r} is not a step")
    if output_step is not None and output_step in fallbacks:
        problems.append(f"output_step {output_step!r} is a fallback step, which runs only when another step fails")
    if steps and all(s.id in fallbacks for s in steps):
        problems.append("every step is a fallback step: nothing would run")
    return problems
