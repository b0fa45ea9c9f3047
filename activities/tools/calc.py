"""`calculate`: evaluate an arithmetic expression without `eval`.

Invariants: the expression is parsed with `ast` and walked over a whitelist (numeric literals,
+ - * / // % **, unary +/-, parentheses, a few `math` functions and constants); any other node,
name or call is refused. Integer results are bounded (MAX_INT_BITS) and `**` is checked before it
is computed, so no expression can burn CPU or memory; non-finite results are refused.
"""

from __future__ import annotations

import ast
import math
import operator
from typing import Callable

from activities.content_store import tool_result
from activities.tools.registry import tool_activity, tool_error
from contracts.errors import ErrorType
from contracts.tools import CalculateArgs, ToolResult
from stores.protocols import ContentStore

MAX_INT_BITS = 4_096
MAX_NODES = 200

Number = int | float

_BINARY: dict[type[ast.operator], Callable[[Number, Number], Number]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_UNARY: dict[type[ast.unaryop], Callable[[Number], Number]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e, "tau": math.tau}


class CalcError(ValueError):
    """The expression is not allowed or cannot be evaluated; the message is shown to the model."""


def _round(value: Number, ndigits: int | None = None) -> Number:
    # round(5, -10**9) would compute 10**(10**9); no sensible rounding needs more than 300 digits.
    if ndigits is not None and (not isinstance(ndigits, int) or abs(ndigits) > 300):
        raise CalcError("round() takes an integer number of digits between -300 and 300")
    return round(value, ndigits)


_FUNCTIONS: dict[str, Callable[..., Number]] = {
    "sqrt": math.sqrt,
    "log": math.log,
    "log10": math.log10,
    "log2": math.log2,
    "exp": math.exp,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "asin": math.asin,
    "acos": math.acos,
    "atan": math.atan,
    "atan2": math.atan2,
    "hypot": math.hypot,
    "floor": math.floor,
    "ceil": math.ceil,
    "abs": abs,
    "round": _round,
    "min": min,
    "max": max,
}


def _bounded(value: Number) -> Number:
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise CalcError(f"result too large (more than {MAX_INT_BITS} bits)")
    if isinstance(value, float) and not math.isfinite(value):
        raise CalcError("result is not a finite number")
    return value


def _power(base: Number, exponent: Number) -> Number:
    # Estimate the size first: computing 2**10**10 just to reject it would take minutes.
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
        if (abs(base).bit_length() - 1) * exponent > MAX_INT_BITS:
            raise CalcError(f"result too large (more than {MAX_INT_BITS} bits)")
    result = base**exponent
    if isinstance(result, complex):
        raise CalcError("result is a complex number (negative base with a fractional exponent)")
    return result


def _eval(node: ast.AST) -> Number:
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant):
        # bool is an int subclass; True + 1 is not arithmetic the model should rely on.
        if isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            return _bounded(node.value)
        raise CalcError(f"unsupported literal {node.value!r}")
    if isinstance(node, ast.BinOp):
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow):
            return _bounded(_power(left, right))
        op = _BINARY.get(type(node.op))
        if op is None:
            raise CalcError(f"unsupported operator {type(node.op).__name__}")
        return _bounded(op(left, right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.Name):
        if node.id in _CONSTANTS:
            return _CONSTANTS[node.id]
        raise CalcError(f"unknown name {node.id!r}; constants: {', '.join(_CONSTANTS)}")
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS:
            shown = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
            raise CalcError(f"function {shown!r} is not allowed; allowed: {', '.join(_FUNCTIONS)}")
        if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
            raise CalcError("functions take positional arguments only")
        return _bounded(_FUNCTIONS[node.func.id](*(_eval(a) for a in node.args)))
    raise CalcError(f"unsupported syntax: {type(node).__name__}")


def evaluate(expression: str) -> Number:
    """Evaluate `expression`; raises CalcError with a message meant for the model."""
    # `^` is a common way to write powers; in Python it is XOR, which is never what is meant here.
    try:
        tree = ast.parse(expression.strip().replace("^", "**"), mode="eval")
    except SyntaxError as exc:
        raise CalcError(f"not a valid expression: {exc.msg}") from exc
    except (RecursionError, MemoryError) as exc:
        raise CalcError("expression is nested too deeply") from exc
    if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
        raise CalcError(f"expression is too long (more than {MAX_NODES} syntax nodes)")
    try:
        return _eval(tree)
    except ZeroDivisionError as exc:
        raise CalcError("division by zero") from exc
    except OverflowError as exc:
        raise CalcError("result too large") from exc
    except RecursionError as exc:
        raise CalcError("expression is nested too deeply") from exc
    except TypeError as exc:
        raise CalcError(f"wrong arguments: {exc}") from exc
    except ValueError as exc:
        if isinstance(exc, CalcError):
            raise
        raise CalcError(f"math error: {exc}") from exc


def format_number(value: Number) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return repr(value)


class CalcTools:
    """`calculate`, bound to one content store (the same result path as every tool)."""

    def __init__(self, content: ContentStore) -> None:
        self._content = content

    @tool_activity("calculate")
    async def calculate(self, args: CalculateArgs) -> ToolResult:
        """Evaluate an arithmetic expression (+ - * / // % **, parentheses, sqrt, log, exp, sin, cos, min, max, abs, round, pi, e)."""
        try:
            value = evaluate(args.expression)
        except CalcError as exc:
            raise tool_error(ErrorType.TOOL_ARGUMENTS_INVALID, f"cannot calculate {args.expression!r}: {exc}") from exc
        return tool_result(self._content, "calculate", format_number(value))
