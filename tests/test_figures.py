"""Figures: formulas without eval, exact decimal arithmetic, number formats."""

from __future__ import annotations

from decimal import Decimal

import pytest

from claimpress import figures as fig


def value(text: str, **values: int | float) -> Decimal:
    return fig.evaluate(fig.parse_formula(text),
                        {k: fig.to_decimal(v) for k, v in values.items()})


def test_the_seed_share_at_two_precisions() -> None:
    share = value("urgent / reports", urgent=63892, reports=36200000)
    assert fig.format_value(share, ".2%") == "0.18%"
    assert fig.format_value(share, ".3%") == "0.176%"
    assert fig.format_value(share, ".1%") == "0.2%"
    assert fig.format_value(Decimal(36200000), ",") == "36,200,000"


def test_arithmetic_is_exact_decimal() -> None:
    assert value("a + b", a=0.1, b=0.2) == Decimal("0.3")
    assert value("(a - b) * 2 / -c", a=10, b=4, c=3) == Decimal(-4)
    assert value("+a", a=1) == 1


@pytest.mark.parametrize("formula", [
    "__import__('os').system('x')", "a ** 2", "a % 2", "a // 2", "f(a)", "a.b", "a[0]",
    "a if b else c", "'text'", "True", "lambda: 1", "a and b", "a < b", "", "a +", "[a]",
    "a; b", "(" * 400 + "a" + ")" * 400,
])
def test_only_arithmetic_is_accepted(formula: str) -> None:
    with pytest.raises(fig.FigureError):
        fig.parse_formula(formula)


def test_division_by_zero_is_a_figure_error() -> None:
    with pytest.raises(fig.FigureError, match="divides by zero"):
        value("a / b", a=1, b=0)


def test_derivation_shows_inputs_and_keeps_needed_parentheses() -> None:
    formula = fig.parse_formula("a / (b + c) - d * e")
    shown = {"a": "63,892", "b": "1", "c": "2", "d": "3", "e": "4"}
    assert fig.derivation(formula, shown) == "63,892 ÷ (1 + 2) - 3 × 4"


@pytest.mark.parametrize("spec", ["x", "%%", "{}", "1000000", ".999f", "!r", "a<10", ">>"])
def test_format_specs_are_plain_numeric_only(spec: str) -> None:
    with pytest.raises(fig.FigureError):
        fig.format_value(Decimal(1), spec)


def test_d_format_needs_a_whole_value() -> None:
    assert fig.format_value(Decimal(5), ",d") == "5"
    with pytest.raises(fig.FigureError):
        fig.format_value(Decimal("5.5"), "d")


def test_plain_values() -> None:
    assert fig.plain(Decimal("36200000")) == "36200000"
    assert fig.plain(Decimal("0.50")) == "0.5"
    assert fig.plain(Decimal("1E+3")) == "1000"
