"""The accsyn query expression language, as far as the product uses it.

The real client lower-cases the whole expression before sending it (values included),
so every comparison here is case-insensitive. Grammar::

    expr       := and_expr ("or" and_expr)*
    and_expr   := unary ("and" unary)*
    unary      := "not" unary | "(" expr ")" | comparison
    comparison := field op value
    op         := = | != | <> | < | > | <= | >= | is | is not
                  | in | not in | contains | matches
    value      := 'quoted' | "quoted" | (v, v, ...) | [v, v, ...] | bare word

A field may be dotted (``job.id``, ``source.path``, ``metadata.ftrack_component_id``);
what a field resolves to is the caller's business (see :data:`Resolver`): it returns
every value the record may be known by (an id and a code, say), and a comparison holds
when any of them matches (``!=`` and ``not in`` when none does).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

Resolver = Callable[[str], Sequence[Any]]
Predicate = Callable[[Resolver], bool]

_SYMBOL_OPS = ("<=", ">=", "!=", "<>", "=", "<", ">")
_WORD_OPS = ("not in", "is not", "contains", "matches", "in", "is")
_FIELD = re.compile(r"[a-z_][a-z0-9_.\-]*", re.IGNORECASE)


class QuerySyntaxError(ValueError):
    """The expression cannot be parsed; the message says where."""


def compile_query(expression: str | None) -> Predicate:
    """Parse *expression* once; the result tests records through a resolver."""
    if not expression or not expression.strip():
        return lambda _resolve: True
    parser = _Parser(expression)
    predicate = parser.parse_or()
    parser.skip_space()
    if not parser.at_end():
        raise parser.error("unexpected text")
    return predicate


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    # -- scanning -------------------------------------------------------------------------

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def skip_space(self) -> None:
        while not self.at_end() and self.text[self.pos].isspace():
            self.pos += 1

    def error(self, what: str) -> QuerySyntaxError:
        return QuerySyntaxError(f"Invalid query {self.text!r}: {what} at position {self.pos}")

    def keyword(self, word: str) -> bool:
        """Consume *word* if it comes next as a whole word (case-insensitive)."""
        self.skip_space()
        end = self.pos + len(word)
        if self.text[self.pos : end].lower() != word:
            return False
        if end < len(self.text) and (self.text[end].isalnum() or self.text[end] == "_"):
            return False
        self.pos = end
        return True

    def symbol(self, sym: str) -> bool:
        self.skip_space()
        if self.text.startswith(sym, self.pos):
            self.pos += len(sym)
            return True
        return False

    # -- grammar --------------------------------------------------------------------------

    def parse_or(self) -> Predicate:
        terms = [self.parse_and()]
        while self.keyword("or"):
            terms.append(self.parse_and())
        if len(terms) == 1:
            return terms[0]
        return lambda resolve: any(term(resolve) for term in terms)

    def parse_and(self) -> Predicate:
        terms = [self.parse_unary()]
        while self.keyword("and"):
            terms.append(self.parse_unary())
        if len(terms) == 1:
            return terms[0]
        return lambda resolve: all(term(resolve) for term in terms)

    def parse_unary(self) -> Predicate:
        if self.keyword("not"):
            inner = self.parse_unary()
            return lambda resolve: not inner(resolve)
        if self.symbol("("):
            inner = self.parse_or()
            if not self.symbol(")"):
                raise self.error("missing ')'")
            return inner
        return self.parse_comparison()

    def parse_comparison(self) -> Predicate:
        self.skip_space()
        match = _FIELD.match(self.text, self.pos)
        if not match:
            raise self.error("expected a field name")
        field = match.group(0).lower()
        self.pos = match.end()
        op = self.parse_operator()
        expected: Any = self.parse_list() if op in ("in", "not in") else self.parse_value()
        return _comparison(field, op, expected)

    def parse_operator(self) -> str:
        self.skip_space()
        for op in _SYMBOL_OPS:
            if self.symbol(op):
                return {"<>": "!="}.get(op, op)
        for op in _WORD_OPS:
            first, _, second = op.partition(" ")
            saved = self.pos
            if self.keyword(first) and (not second or self.keyword(second)):
                return {"is": "=", "is not": "!="}.get(op, op)
            self.pos = saved
        raise self.error("expected an operator")

    def parse_list(self) -> list[str]:
        self.skip_space()
        closing = {"(": ")", "[": "]"}.get(self.text[self.pos : self.pos + 1])
        if closing is None:
            return [self.parse_value()]
        self.pos += 1
        values: list[str] = []
        while not self.symbol(closing):
            if self.at_end():
                raise self.error(f"missing {closing!r}")
            values.append(self.parse_value(stop=f",{closing}"))
            self.symbol(",")
        return values

    def parse_value(self, stop: str = ")") -> str:
        self.skip_space()
        if self.at_end():
            raise self.error("expected a value")
        quote = self.text[self.pos]
        if quote in "'\"":
            end = self.text.find(quote, self.pos + 1)
            if end < 0:
                raise self.error("unterminated string")
            value = self.text[self.pos + 1 : end]
            self.pos = end + 1
            return value
        start = self.pos
        # A bare value runs to the next space: it may hold '=', ':' or '@'
        # (``source=site=hq``, ``user=vera@vfxvendor.example``).
        while not self.at_end() and not self.text[self.pos].isspace():
            if self.text[self.pos] in stop:
                break
            self.pos += 1
        if start == self.pos:
            raise self.error("expected a value")
        return self.text[start : self.pos]


# -- evaluation ---------------------------------------------------------------------------


def _flatten(values: Sequence[Any]) -> list[Any]:
    flat: list[Any] = []
    for value in values:
        if isinstance(value, list | tuple | set):
            flat.extend(value)
        else:
            flat.append(value)
    return flat


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value))
    except ValueError:
        return None


def _equal(actual: Any, expected: str) -> bool:
    expected = expected.lower()
    if actual is None:
        return expected in ("null", "none", "")
    if isinstance(actual, bool):
        return str(actual).lower() == expected
    if isinstance(actual, int | float):
        number = _number(expected)
        return number is not None and float(actual) == number
    return str(actual).lower() == expected


def _order(actual: Any, expected: str, op: str) -> bool:
    left: Any = _number(actual)
    right: Any = _number(expected)
    if left is None or right is None:
        # Dates travel as ISO strings, which order correctly as text.
        if actual is None:
            return False
        left, right = str(actual).lower(), expected.lower()
    return {
        "<": left < right,
        ">": left > right,
        "<=": left <= right,
        ">=": left >= right,
    }[op]


def _comparison(field: str, op: str, expected: Any) -> Predicate:
    def holds(resolve: Resolver) -> bool:
        actual = _flatten(resolve(field))
        if op == "=":
            return any(_equal(a, expected) for a in actual)
        if op == "!=":
            return not any(_equal(a, expected) for a in actual)
        if op == "in":
            return any(_equal(a, e) for a in actual for e in expected)
        if op == "not in":
            return not any(_equal(a, e) for a in actual for e in expected)
        if op == "contains":
            return any(a is not None and expected.lower() in str(a).lower() for a in actual)
        if op == "matches":
            pattern = re.compile(expected, re.IGNORECASE)
            return any(a is not None and pattern.search(str(a)) for a in actual)
        return any(_order(a, expected, op) for a in actual)

    return holds
