"""Figures: formulas evaluated without `eval`, and numbers formatted for prose. Pure functions."""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, DivisionByZero, InvalidOperation, Overflow, localcontext

MAX_FORMULA = 300
"""Formulas are short; the bound keeps the parser's recursion shallow."""
MAX_EXPONENT = 999
"""A computed figure above 10**999 is an error, not a thousand-digit number in prose."""

_SPEC = re.compile(
    r"^(?P<align>[<>=^])?(?P<sign>[-+ ])?(?P<alt>#)?(?P<zero>0)?(?P<width>\d{1,2})?"
    r"(?P<group>[,_])?(?:\.(?P<precision>\d{1,2}))?(?P<type>[eEfFgGd%])?$"
)
_OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "×", ast.Div: "÷"}


class FigureError(ValueError):
    """A formula or format that cannot be used; the message says why."""


@dataclass(frozen=True)
class Formula:
    """A parsed formula: its syntax tree and the figure names it uses."""

    text: str
    tree: ast.expr
    names: tuple[str, ...]


@functools.lru_cache(maxsize=8192)
def parse_formula(text: str) -> Formula:
    """Parse `a / (b + c)`; only numbers, names, + - * / and parentheses are allowed."""
    if len(text) > MAX_FORMULA:
        raise FigureError(f"formula is longer than {MAX_FORMULA} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise FigureError(
            f"`{text}` is not a formula; use figure names, numbers, + - * / and parentheses"
        ) from None
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            if node.id not in names:
                names.append(node.id)
        elif isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
                raise FigureError(f"`{text}`: only numbers and figure names may appear")
            if node.value in (float("inf"), float("-inf")):
                raise FigureError(f"`{text}`: a number in it is too large")
        elif isinstance(node, ast.BinOp):
            if type(node.op) not in _OPS:
                raise FigureError(f"`{text}`: only + - * / are allowed, not `{ast.unparse(node)}`")
        elif isinstance(node, ast.UnaryOp):
            if not isinstance(node.op, (ast.USub, ast.UAdd)):
                raise FigureError(f"`{text}`: only + - * / are allowed")
        elif not isinstance(node, (ast.operator, ast.unaryop, ast.Load)):
            raise FigureError(
                f"`{text}`: only figure names, numbers, + - * / and parentheses are allowed"
            )
    return Formula(text, tree, tuple(names))


def evaluate(formula: Formula, values: Mapping[str, Decimal]) -> Decimal:
    """The formula's value over already-computed figures, in exact decimal arithmetic."""

    def walk(node: ast.expr) -> Decimal:
        if isinstance(node, ast.Constant):
            assert isinstance(node.value, (int, float))
            return to_decimal(node.value)
        if isinstance(node, ast.Name):
            return values[node.id]
        if isinstance(node, ast.UnaryOp):
            operand = walk(node.operand)
            return -operand if isinstance(node.op, ast.USub) else operand
        assert isinstance(node, ast.BinOp)
        left, right = walk(node.left), walk(node.right)
        if isinstance(node.op, ast.Add):
            return left + right
        if isinstance(node.op, ast.Sub):
            return left - right
        if isinstance(node.op, ast.Mult):
            return left * right
        return left / right

    with localcontext() as ctx:
        ctx.prec = 28
        # Far beyond any real figure, and small enough that showing the value stays cheap.
        ctx.Emax, ctx.Emin = MAX_EXPONENT, -MAX_EXPONENT
        ctx.traps[DivisionByZero] = True
        try:
            result = walk(formula.tree)
        except Overflow:
            raise FigureError(f"`{formula.text}` is too large to show") from None
        except (DivisionByZero, InvalidOperation):
            raise FigureError(f"`{formula.text}` divides by zero") from None
        if not result.is_finite():
            raise FigureError(f"`{formula.text}` is not a finite number")
        return result


def derivation(formula: Formula, shown: Mapping[str, str]) -> str:
    """The formula with each name replaced by its shown value: `63,892 ÷ 36,200,000`."""

    def walk(node: ast.expr, parent: int) -> str:
        if isinstance(node, ast.Name):
            return shown[node.id]
        if isinstance(node, ast.Constant):
            return str(node.value)
        if isinstance(node, ast.UnaryOp):
            sign = "-" if isinstance(node.op, ast.USub) else "+"
            return sign + walk(node.operand, 3)
        assert isinstance(node, ast.BinOp)
        level = 1 if isinstance(node.op, (ast.Add, ast.Sub)) else 2
        text = f"{walk(node.left, level)} {_OPS[type(node.op)]} {walk(node.right, level + 1)}"
        return f"({text})" if level < parent else text

    return walk(formula.tree, 0)


def to_decimal(value: int | float | Decimal) -> Decimal:
    """A YAML number as an exact decimal (floats through their shortest repr, 0.1 stays 0.1)."""
    return (
        value
        if isinstance(value, Decimal)
        else Decimal(repr(value) if isinstance(value, float) else value)
    )


def check_spec(spec: str) -> None:
    """Refuse a format that is not a plain numeric Python format spec such as `,` or `.2%`."""
    if not _SPEC.match(spec):
        raise FigureError(
            f"`{spec}` is not a number format; use Python's, such as `,` "
            "(63,892), `.1f` (36.2) or `.2%` (0.18%)"
        )


def format_value(value: Decimal, spec: str) -> str:
    """The value formatted by a checked spec; `d` works on whole values only."""
    check_spec(spec)
    if spec.endswith("d"):
        if value != value.to_integral_value():
            raise FigureError(f"`{spec}` shows whole numbers only and the value is {value}")
        return format(int(value), spec)
    if not spec:
        return plain(value)
    return format(value, spec)


def plain(value: Decimal) -> str:
    """A value with no format: integers as written, others without exponent or trailing zeros."""
    if value == value.to_integral_value():
        return str(int(value))
    text = format(value.normalize(), "f")
    return text


def decimals(spec: str) -> int | None:
    """How many decimals a spec shows, counting a percent as two more; None when it can't tell."""
    match = _SPEC.match(spec)
    if not match or match["precision"] is None:
        return 0 if match and match["type"] == "d" else None
    places = int(match["precision"])
    return places + 2 if match["type"] == "%" else places
