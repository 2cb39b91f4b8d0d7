"""kappa's SQL expressions: parsed once (sqlglot), checked, compiled to two forms.

``compile_expression(text, columns)`` parses ``text`` with sqlglot's DuckDB dialect and
walks the tree once, checking every field, function and type against ``columns`` (the
names an expression may read, with their types) and raising ``ExpressionError`` with
the position and what to write instead. Nothing is checked per event. The result is:

- ``run(row)``: a closure over the checked tree (no Python ``eval`` of user text) that
  computes the value of one row, a dict of field name -> value; ``Uncomputable`` when
  the row's value cannot be computed;
- ``sql`` and ``error_sql``: the same expression as DuckDB SQL, for ``kappa verify``
  and the tests. ``sql`` is the text as written, with literals given kappa's types
  (``1`` a BIGINT, ``1.5`` a DOUBLE) and casts and BIGINT arithmetic wrapped in
  ``TRY``; ``error_sql`` is true on the rows where ``run`` raises ``Uncomputable``
  (``FALSE`` when none can).

Types: DOUBLE, BIGINT, VARCHAR, BOOLEAN and TIMESTAMP (the event time, read by date
parts only). NULL is ``None`` and follows SQL (``1 + NULL`` is NULL, ``NULL = NULL`` is
NULL, three-valued ``AND``/``OR``). A DOUBLE is always finite: an operation whose result
is not (an overflow, a division by zero) cannot be computed. ``CASE``, ``AND``, ``OR``
and ``COALESCE`` evaluate an operand only where its value is needed, so ``CASE WHEN b =
0 THEN NULL ELSE a / b END`` never divides by zero; every other operator evaluates all
its operands.
"""

from __future__ import annotations

import difflib
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlglot
from sqlglot import exp

from agents.expression_types import Compiled, ExpressionError, Row, Run, SqlType
from agents.sql_values import (
    DATE_PARTS,
    Uncomputable,
    bigint,
    double_to_bigint,
    finite,
    remainder,
    round_digits,
)

NUMERIC = ("BIGINT", "DOUBLE")
_DATE_FUNCTIONS = [part.upper() for part in DATE_PARTS if len(part) > 3]  # not dow, doy
FUNCTIONS = ("ABS", "CASE", "CAST", "COALESCE", "DATE_PART", "EXTRACT", "LOWER", "ROUND",
             "TRY_CAST", "UPPER", *_DATE_FUNCTIONS)  # fmt: skip
_CASTS: dict[str, tuple[str, ...]] = {
    "DOUBLE": ("DOUBLE", "BIGINT", "NULL"),
    "BIGINT": ("BIGINT", "DOUBLE", "NULL"),
    "VARCHAR": ("VARCHAR", "BIGINT", "BOOLEAN", "NULL"),
    "BOOLEAN": ("BOOLEAN", "NULL"),
}
_CAST_NAMES = {"DOUBLE": "DOUBLE", "BIGINT": "BIGINT", "TEXT": "VARCHAR", "VARCHAR": "VARCHAR",
               "BOOLEAN": "BOOLEAN", "FLOAT8": "DOUBLE", "INT8": "BIGINT"}  # fmt: skip


def compile_expression(text: str, columns: Mapping[str, SqlType]) -> Compiled:
    """Parse and check ``text`` against ``columns``; ``ExpressionError`` if it is wrong."""
    try:
        tree = sqlglot.parse(text, dialect="duckdb")
    except sqlglot.errors.ParseError as exc:
        first = exc.errors[0] if exc.errors else {}
        raise ExpressionError(
            f"at column {first.get('col', '?')}: cannot read this SQL expression"
            f" near {first.get('highlight', '')!r}; write one expression such as"
            ' "field1 + field2" or "status = \'paid\'"'
        ) from None
    if len(tree) != 1 or tree[0] is None:
        raise ExpressionError("expected one SQL expression, got several (a ';' ends one)")
    root = tree[0]
    assert isinstance(root, exp.Expression)
    return _Compiler(text, columns).node(root)


def sql_name(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def sql_text(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _or(*conditions: str) -> str:
    kept = [c for c in conditions if c != "FALSE"]
    return "(" + " OR ".join(kept) + ")" if kept else "FALSE"


def _and(guard: str, condition: str) -> str:
    return "FALSE" if condition == "FALSE" else f"({guard} AND {condition})"


def _null_safe(run: Callable[..., Any], *operands: Run) -> Run:
    """``run`` over the operands' values, NULL when any is NULL (all are evaluated)."""
    if len(operands) == 1:
        (only,) = operands

        def unary(row: Row) -> Any:
            value = only(row)
            return None if value is None else run(value)

        return unary
    left, right = operands

    def binary(row: Row) -> Any:
        a, b = left(row), right(row)
        return None if a is None or b is None else run(a, b)

    return binary


def _as_double(compiled: Compiled) -> Run:
    if compiled.type != "BIGINT":
        return compiled.run
    inner = compiled.run
    return lambda row: None if (value := inner(row)) is None else float(value)


_COMPARE: dict[type[exp.Expression], tuple[str, Callable[[Any, Any], bool]]] = {
    exp.EQ: ("=", lambda a, b: a == b),
    exp.NEQ: ("<>", lambda a, b: a != b),
    exp.LT: ("<", lambda a, b: a < b),
    exp.LTE: ("<=", lambda a, b: a <= b),
    exp.GT: (">", lambda a, b: a > b),
    exp.GTE: (">=", lambda a, b: a >= b),
}
_ARITHMETIC: dict[type[exp.Expression], str] = {exp.Add: "+", exp.Sub: "-", exp.Mul: "*"}
_INT_OPS: dict[str, Callable[[int, int], int]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
}


# The node types of kappa's SQL and the _Compiler method for each; TryCast is a Cast.
_DISPATCH: list[tuple[tuple[type[exp.Expression], ...], str]] = [
    ((exp.Column,), "column"),
    ((exp.Literal, exp.Boolean, exp.Null), "literal"),
    ((exp.Neg,), "negate"),
    ((*_ARITHMETIC, exp.Div, exp.Mod), "arithmetic"),
    (tuple(_COMPARE), "compare"),
    ((exp.And, exp.Or), "logic"),
    ((exp.Not,), "negation"),
    ((exp.Is,), "is_null"),
    ((exp.In,), "in_list"),
    ((exp.Between,), "between"),
    ((exp.Case,), "case"),
    ((exp.Coalesce,), "coalesce"),
    ((exp.Lower, exp.Upper), "text_case"),
    ((exp.Abs,), "absolute"),
    ((exp.Round,), "round"),
    ((exp.Cast,), "cast"),
]


class _Compiler:
    def __init__(self, text: str, columns: Mapping[str, SqlType]) -> None:
        self.text = text
        self.columns = columns

    # -- errors ---------------------------------------------------------------------

    def fail(self, node: exp.Expression, message: str) -> ExpressionError:
        return ExpressionError(f"at column {self._column(node)} ({node.sql('duckdb')}): {message}")

    def _column(self, node: exp.Expression) -> int | str:
        """Where ``node`` starts in the text: its leftmost token that sqlglot placed."""
        starts = [
            int(meta["start"])
            for part in node.walk()
            if "start" in (meta := getattr(part, "meta", None) or {})
        ]
        return min(starts) + 1 if starts else "?"

    def expect(
        self, node: exp.Expression, compiled: Compiled, types: Sequence[str], what: str
    ) -> None:
        if compiled.type not in (*types, "NULL"):
            raise self.fail(node, f"{what} takes {' or '.join(types)}, got {compiled.type}")

    # -- the walk -------------------------------------------------------------------

    def node(self, node: exp.Expression) -> Compiled:
        if isinstance(node, exp.Paren):
            inner = self.node(node.this)
            return Compiled(inner.type, inner.run, f"({inner.sql})", inner.error_sql, inner.fields)
        for kinds, method in _DISPATCH:
            if isinstance(node, kinds):
                compiled: Compiled = getattr(self, method)(node)
                return compiled
        if isinstance(node, exp.Extract):
            return self.date_part(node, node.name.lower(), node.expression)
        if isinstance(node, exp.Anonymous | exp.Func):
            return self.function(node)
        raise self.fail(
            node,
            f"{type(node).__name__} is not part of kappa's SQL; use arithmetic, comparisons,"
            f" AND/OR/NOT, IS NULL, IN, BETWEEN, or one of {', '.join(FUNCTIONS)}",
        )

    def column(self, node: exp.Column) -> Compiled:
        if node.table:
            raise self.fail(node, "fields have no table prefix; write the field name alone")
        name = node.name
        if name not in self.columns:
            close = difflib.get_close_matches(name, list(self.columns), n=1)
            hint = (
                f"did you mean {close[0]!r}?"
                if close
                else "declare it in `fields` (e.g. fields = { "
                f'{name} = "double" }}), or derive it before this expression'
            )
            raise self.fail(node, f"unknown field {name!r}; {hint}")
        kind = self.columns[name]
        # itemgetter: a field read in C, the commonest leaf of every expression.
        read: Run = operator.itemgetter(name)
        return Compiled(kind, read, sql_name(name), "FALSE", frozenset([name]))

    def literal(self, node: exp.Expression) -> Compiled:
        if isinstance(node, exp.Null):
            return Compiled("NULL", lambda row: None, "NULL", "FALSE", frozenset())
        if isinstance(node, exp.Boolean):
            flag = bool(node.this)
            return Compiled("BOOLEAN", lambda row: flag, str(flag).upper(), "FALSE", frozenset())
        assert isinstance(node, exp.Literal)
        if node.is_string:
            text = node.this
            return Compiled("VARCHAR", lambda row: text, sql_text(text), "FALSE", frozenset())
        digits = node.this
        if digits.isdigit():
            number = bigint(int(digits), digits) if int(digits) <= 2**63 - 1 else None
            if number is not None:
                return Compiled(
                    "BIGINT", lambda row: number, f"CAST({number} AS BIGINT)", "FALSE", frozenset()
                )
        value = float(digits)
        if not math.isfinite(value):
            raise self.fail(node, "the number is beyond DOUBLE's range")
        return Compiled(
            "DOUBLE", lambda row: value, f"CAST('{value!r}' AS DOUBLE)", "FALSE", frozenset()
        )

    def negate(self, node: exp.Neg) -> Compiled:
        inner = self.node(node.this)
        self.expect(node, inner, NUMERIC, "unary -")
        if inner.type == "BIGINT":
            run = _null_safe(lambda a: bigint(-a, "-" + str(a)), inner.run)
            sql = f"TRY(-{inner.sql})"
            error = _or(inner.error_sql, f"({inner.sql} IS NOT NULL AND {sql} IS NULL)")
            return Compiled("BIGINT", run, sql, error, inner.fields)
        return Compiled(inner.type, _null_safe(lambda a: -a, inner.run), f"(-{inner.sql})",
                        inner.error_sql, inner.fields)  # fmt: skip

    def arithmetic(self, node: exp.Expression) -> Compiled:
        left, right = self.node(node.this), self.node(node.expression)
        fields = left.fields | right.fields
        if isinstance(node, exp.Div):
            symbol = "/"
        elif isinstance(node, exp.Mod):
            symbol = "%"
        else:
            symbol = _ARITHMETIC[type(node)]
        for side in (left, right):
            self.expect(node, side, NUMERIC, f"{symbol!r}")
        errors = _or(left.error_sql, right.error_sql)
        both = f"{left.sql} IS NOT NULL AND {right.sql} IS NOT NULL"
        if symbol == "/":
            # Always DOUBLE, as DuckDB's / is; a zero divisor is a dead letter, where
            # DuckDB gives an infinity.
            def divide(a: float, b: float) -> float:
                if b == 0:
                    raise Uncomputable("division by zero")
                return finite(a / b, f"{a!r} / {b!r}")

            run = _null_safe(divide, _as_double(left), _as_double(right))
            sql = f"(CAST({left.sql} AS DOUBLE) / CAST({right.sql} AS DOUBLE))"
            error = _or(errors, f"({both} AND ({right.sql} = 0 OR NOT isfinite({sql})))")
            return Compiled("DOUBLE", run, sql, error, fields)
        if symbol == "%":
            for side in (left, right):
                if side.type == "DOUBLE":
                    raise self.fail(node, "% takes BIGINT operands; CAST(x AS BIGINT) first")
            sql = f"TRY({left.sql} % {right.sql})"
            error = _or(errors, f"({both} AND {right.sql} = 0)")
            return Compiled(
                "BIGINT", _null_safe(remainder, left.run, right.run), sql, error, fields
            )
        if "DOUBLE" in (left.type, right.type):
            op = _INT_OPS[symbol]
            run = _null_safe(lambda a, b: finite(op(a, b), f"{a!r} {symbol} {b!r}"),
                             _as_double(left), _as_double(right))  # fmt: skip
            sql = f"({left.sql} {symbol} {right.sql})"
            return Compiled("DOUBLE", run, sql, _or(errors, f"(NOT isfinite({sql}))"), fields)
        op = _INT_OPS[symbol]
        run = _null_safe(lambda a, b: bigint(op(a, b), f"{a} {symbol} {b}"), left.run, right.run)
        sql = f"TRY({left.sql} {symbol} {right.sql})"
        return Compiled("BIGINT", run, sql, _or(errors, f"({both} AND {sql} IS NULL)"), fields)

    def compare(self, node: exp.Expression) -> Compiled:
        left, right = self.node(node.this), self.node(node.expression)
        symbol, op = _COMPARE[type(node)]
        kinds = {left.type, right.type} - {"NULL"}
        if len(kinds) > 1 and not kinds <= set(NUMERIC):
            raise self.fail(
                node,
                f"cannot compare {left.type} with {right.type}; compare like with like"
                " (quote text: status = 'paid'; CAST(x AS VARCHAR) for a number as text)",
            )
        if "TIMESTAMP" in kinds:
            raise self.fail(node, "compare a date part of the event time, e.g. hour(ts) >= 9")
        a, b = (_as_double(left), _as_double(right)) if len(kinds) > 1 else (left.run, right.run)
        return Compiled(
            "BOOLEAN",
            _null_safe(op, a, b),
            f"({left.sql} {symbol} {right.sql})",
            _or(left.error_sql, right.error_sql),
            left.fields | right.fields,
        )

    def logic(self, node: exp.Expression) -> Compiled:
        left, right = self.node(node.this), self.node(node.expression)
        for side in (left, right):
            self.expect(node, side, ("BOOLEAN",), "AND/OR")
        # AND stops at FALSE, OR at TRUE: the right side is evaluated only when needed.
        decisive = not isinstance(node, exp.And)
        first, second = left.run, right.run

        def run(row: Row) -> Any:
            a = first(row)
            if a is decisive:
                return decisive
            b = second(row)
            if b is decisive:
                return decisive
            return None if a is None or b is None else not decisive

        word = "AND" if isinstance(node, exp.And) else "OR"
        guard = f"{left.sql} IS DISTINCT FROM {str(decisive).upper()}"
        return Compiled(
            "BOOLEAN",
            run,
            f"({left.sql} {word} {right.sql})",
            _or(left.error_sql, _and(guard, right.error_sql)),
            left.fields | right.fields,
        )

    def negation(self, node: exp.Not) -> Compiled:
        inner = self.node(node.this)
        self.expect(node, inner, ("BOOLEAN",), "NOT")
        return Compiled("BOOLEAN", _null_safe(lambda a: not a, inner.run), f"(NOT {inner.sql})",
                        inner.error_sql, inner.fields)  # fmt: skip

    def is_null(self, node: exp.Is) -> Compiled:
        if not isinstance(node.expression, exp.Null):
            raise self.fail(node, "IS takes NULL here: write x IS NULL or x IS NOT NULL")
        inner = self.node(node.this)
        run = inner.run
        return Compiled("BOOLEAN", lambda row: run(row) is None, f"({inner.sql} IS NULL)",
                        inner.error_sql, inner.fields)  # fmt: skip

    def in_list(self, node: exp.In) -> Compiled:
        if node.args.get("query") or node.args.get("unnest") or node.args.get("field"):
            raise self.fail(node, "IN takes a list of values: x IN ('a', 'b')")
        subject = self.node(node.this)
        items = [self.node(item) for item in node.expressions]
        kinds = {subject.type, *(item.type for item in items)} - {"NULL"}
        if len(kinds) > 1 and not kinds <= set(NUMERIC):
            raise self.fail(node, f"IN compares like with like, got {' and '.join(sorted(kinds))}")
        mixed = len(kinds) > 1
        first = _as_double(subject) if mixed else subject.run
        others = [_as_double(item) if mixed else item.run for item in items]

        def run(row: Row) -> bool | None:
            value = first(row)
            found = [other(row) for other in others]
            if value is None:
                return None
            if value in found:
                return True
            return None if None in found else False

        return Compiled(
            "BOOLEAN",
            run,
            f"({subject.sql} IN ({', '.join(item.sql for item in items)}))",
            _or(subject.error_sql, *(item.error_sql for item in items)),
            subject.fields.union(*(item.fields for item in items)),
        )

    def between(self, node: exp.Between) -> Compiled:
        low = exp.GTE(this=node.this, expression=node.args["low"])
        high = exp.LTE(this=node.this, expression=node.args["high"])
        return self.node(exp.And(this=low, expression=high))

    def unify(
        self, node: exp.Expression, branches: Sequence[Compiled]
    ) -> tuple[SqlType, list[Run]]:
        """The common type of ``branches`` (BIGINT and DOUBLE give DOUBLE) and their runs."""
        kinds = {branch.type for branch in branches} - {"NULL"}
        if len(kinds) > 1 and not kinds <= set(NUMERIC):
            raise self.fail(
                node, f"its results mix {' and '.join(sorted(kinds))}; give every result one type"
            )
        kind: SqlType = "DOUBLE" if len(kinds) > 1 else (kinds.pop() if kinds else "NULL")
        runs = [_as_double(b) if kind == "DOUBLE" else b.run for b in branches]
        return kind, runs

    def case(self, node: exp.Case) -> Compiled:
        subject = node.args.get("this")
        conditions: list[Compiled] = []
        results: list[Compiled] = []
        for branch in node.args.get("ifs") or []:
            test = branch.this
            if subject is not None:  # CASE x WHEN v: x = v
                test = exp.EQ(this=subject.copy(), expression=test)
            condition = self.node(test)
            self.expect(branch, condition, ("BOOLEAN",), "WHEN")
            conditions.append(condition)
            results.append(self.node(branch.args["true"]))
        default = node.args.get("default")
        otherwise = self.node(default) if default is not None else self.literal(exp.Null())
        kind, runs = self.unify(node, [*results, otherwise])
        tests = [condition.run for condition in conditions]
        pairs = list(zip(tests, runs[:-1], strict=True))
        fallback = runs[-1]

        def run(row: Row) -> Any:
            for test, result in pairs:
                if test(row) is True:
                    return result(row)
            return fallback(row)

        whens = " ".join(
            f"WHEN {c.sql} THEN {r.sql}" for c, r in zip(conditions, results, strict=True)
        )
        error = otherwise.error_sql
        for condition, result in reversed(list(zip(conditions, results, strict=True))):
            error = _or(
                condition.error_sql,
                _and(f"{condition.sql} IS TRUE", result.error_sql),
                _and(f"{condition.sql} IS NOT TRUE", error),
            )
        fields = frozenset().union(*(c.fields for c in [*conditions, *results, otherwise]))
        return Compiled(kind, run, f"(CASE {whens} ELSE {otherwise.sql} END)", error, fields)

    def coalesce(self, node: exp.Coalesce) -> Compiled:
        operands = [self.node(node.this), *(self.node(item) for item in node.expressions)]
        kind, runs = self.unify(node, operands)

        def run(row: Row) -> Any:
            for operand in runs:
                value = operand(row)
                if value is not None:
                    return value
            return None

        error = "FALSE"
        for operand in reversed(operands):
            error = _or(operand.error_sql, _and(f"{operand.sql} IS NULL", error))
        sql = f"COALESCE({', '.join(operand.sql for operand in operands)})"
        return Compiled(kind, run, sql, error, frozenset().union(*(o.fields for o in operands)))

    def text_case(self, node: exp.Expression) -> Compiled:
        inner = self.node(node.this)
        name = "LOWER" if isinstance(node, exp.Lower) else "UPPER"
        self.expect(node, inner, ("VARCHAR",), name)
        change = str.lower if name == "LOWER" else str.upper
        return Compiled("VARCHAR", _null_safe(change, inner.run), f"{name}({inner.sql})",
                        inner.error_sql, inner.fields)  # fmt: skip

    def absolute(self, node: exp.Abs) -> Compiled:
        inner = self.node(node.this)
        self.expect(node, inner, NUMERIC, "ABS")
        if inner.type == "BIGINT":
            sql = f"TRY(ABS({inner.sql}))"
            error = _or(inner.error_sql, f"({inner.sql} IS NOT NULL AND {sql} IS NULL)")
            run = _null_safe(lambda a: bigint(abs(a), f"ABS({a})"), inner.run)
            return Compiled("BIGINT", run, sql, error, inner.fields)
        return Compiled(inner.type, _null_safe(abs, inner.run), f"ABS({inner.sql})",
                        inner.error_sql, inner.fields)  # fmt: skip

    def round(self, node: exp.Round) -> Compiled:
        inner = self.node(node.this)
        self.expect(node, inner, NUMERIC, "ROUND")
        digits_node = node.args.get("decimals")
        digits = 0
        if digits_node is not None:
            negative = isinstance(digits_node, exp.Neg)
            literal = digits_node.this if negative else digits_node
            if not (isinstance(literal, exp.Literal) and literal.this.isdigit()):
                raise self.fail(node, "ROUND's digits are a whole number, e.g. ROUND(x, 2)")
            digits = -int(literal.this) if negative else int(literal.this)
        if inner.type == "BIGINT":
            if digits < 0:
                raise self.fail(node, "ROUND of a BIGINT to tens or more: CAST it to DOUBLE first")
            return inner  # a whole number is already rounded
        run = _null_safe(lambda a: round_digits(a, digits), inner.run)
        return Compiled(inner.type, run, f"ROUND({inner.sql}, {digits})", inner.error_sql,
                        inner.fields)  # fmt: skip

    def cast(self, node: exp.Cast) -> Compiled:
        inner = self.node(node.this)
        target_name = node.to.this.name if hasattr(node.to.this, "name") else str(node.to.this)
        target = _CAST_NAMES.get(target_name.upper())
        if target is None:
            raise self.fail(
                node, f"CAST to {target_name}: kappa casts to DOUBLE, BIGINT, VARCHAR or BOOLEAN"
            )
        if inner.type not in _CASTS[target]:
            hint = (
                'declare the field\'s type in `fields` instead (e.g. qty = "double"), which'
                " reads numbers written as text"
                if inner.type == "VARCHAR"
                else "ROUND and CAST to BIGINT first, for a number as text"
                if target == "VARCHAR"
                else f"kappa casts {' or '.join(_CASTS[target][:-1])} to {target}"
            )
            raise self.fail(node, f"CAST from {inner.type} to {target}: {hint}")
        safe = isinstance(node, exp.TryCast)
        convert = _converter(inner.type, target)

        def attempt(value: Any) -> Any:
            try:
                return convert(value)
            except Uncomputable:
                if safe:
                    return None
                raise

        sql = f"TRY_CAST({inner.sql} AS {target})"
        error = inner.error_sql
        if not safe and convert is not _same:
            error = _or(error, f"({inner.sql} IS NOT NULL AND {sql} IS NULL)")
        return Compiled(target, _null_safe(attempt, inner.run), sql, error, inner.fields)  # type: ignore[arg-type]

    def date_part(self, node: exp.Expression, part: str, operand: exp.Expression) -> Compiled:
        if part not in DATE_PARTS:
            close = difflib.get_close_matches(part, list(DATE_PARTS), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"use one of {', '.join(DATE_PARTS)}"
            raise self.fail(node, f"unknown date part {part!r}; {hint}")
        inner = self.node(operand)
        self.expect(node, inner, ("TIMESTAMP",), part)
        run = _null_safe(DATE_PARTS[part], inner.run)
        return Compiled("BIGINT", run, f"date_part('{part}', {inner.sql})", inner.error_sql,
                        inner.fields)  # fmt: skip

    def function(self, node: exp.Expression) -> Compiled:
        name = (
            node.name
            if isinstance(node, exp.Anonymous)
            else node.sql_name()
            if isinstance(node, exp.Func)
            else type(node).__name__
        ).lower()
        name = _FUNCTION_NAMES.get(name, name)
        arguments = (
            list(node.expressions)
            if isinstance(node, exp.Anonymous)
            else [value for value in node.args.values() if isinstance(value, exp.Expression)]
        )
        if name in DATE_PARTS and len(arguments) == 1:
            return self.date_part(node, name, arguments[0])
        if name in ("date_part", "datepart") and len(arguments) == 2:
            part = arguments[0]
            if isinstance(part, exp.Literal) and part.is_string:
                return self.date_part(node, part.this.lower(), arguments[1])
            raise self.fail(node, "date_part's part is quoted text, e.g. date_part('hour', ts)")
        close = difflib.get_close_matches(name.upper(), FUNCTIONS, n=1)
        hint = (
            f"did you mean {close[0]}?" if close else f"kappa's functions: {', '.join(FUNCTIONS)}"
        )
        raise self.fail(node, f"unknown function {name.upper()}; {hint}")


# sqlglot's names for date-part functions, where they differ from DuckDB's.
_FUNCTION_NAMES = {
    "day_of_week": "dayofweek",
    "day_of_year": "dayofyear",
    "dayofweek_iso": "isodow",
}


def _same(value: Any) -> Any:
    return value


def _converter(source: str, target: str) -> Callable[[Any], Any]:
    if source in (target, "NULL"):
        return _same
    if target == "DOUBLE":
        return float
    if target == "BIGINT":
        return double_to_bigint
    if source == "BOOLEAN":
        return lambda flag: "true" if flag else "false"
    return str  # BIGINT to VARCHAR
