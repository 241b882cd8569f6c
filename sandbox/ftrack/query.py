"""The ftrack query language, as far as the client and this product use it.

``[select p1, a.b.c from] Type [where EXPR] [order by path [ascending|descending], ...]
[offset N] [limit M]``, with ``and``/``or``/``not``, parentheses, dotted paths through
references and collections (a condition holds if *any* reached value matches; a path
that runs into nothing reaches ``none``, like an outer join), the operators ``is,
is_not, =, !=, <, >, <=, >=, before, after, in, not_in, like, not_like, has, any``,
quoted strings, unquoted ids, numbers, ``true``/``false`` and ``none``, and
``in (select x from ...)`` subqueries.

Unknown types and attributes are errors, as on a real server: a typo must not quietly
match nothing.

Speed: a query is compiled to closures, and before scanning anything the planner looks
for conditions an index answers (``id in (...)``, ``location_id is X``, and dotted
paths such as ``version.asset.parent.project_id is X``, walked backwards through the
foreign-key indexes). Conditions answered exactly that way are not evaluated again.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable
from typing import Any

from .errors import ParseError, UnknownAttributeError, ValidationError
from .schema import Coll, Link, Prop, Ref, Scalar
from .store import SEQ, TYPE, Record, Store, by_seq
from .writes import normalise_datetime

# -- tokens ---------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
    | (?P<op>!=|<=|>=|=|<|>)
    | (?P<punct>[(),])
    | (?P<word>[^\s"'(),=<>!]+)
    )""",
    re.VERBOSE,
)
_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")
_WORD_OPERATORS = {
    "is",
    "is_not",
    "in",
    "not_in",
    "like",
    "not_like",
    "has",
    "any",
    "before",
    "after",
}
_SYMBOL_OPERATORS = {"=": "is", "!=": "is_not", "<": "<", ">": ">", "<=": "<=", ">=": ">="}


@dataclasses.dataclass(frozen=True)
class Token:
    kind: str  # string | op | punct | word | end
    text: str
    pos: int

    def is_word(self, *words: str) -> bool:
        return self.kind == "word" and self.text.lower() in words


def tokenize(text: str) -> list[Token]:
    tokens = []
    pos = 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            break
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise ParseError(_where(text, pos, f"unexpected character {text[pos]!r}"))
        kind = match.lastgroup or "word"
        tokens.append(Token(kind, match.group(kind), match.start(kind)))
        pos = match.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


def _where(text: str, pos: int, message: str) -> str:
    return f"Malformed query: {message} at position {pos + 1} in: {text}"


# -- syntax tree ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Literal:
    kind: str  # string | number | word | none | bool
    value: Any

    @property
    def text(self) -> str:
        return self.value if isinstance(self.value, str) else str(self.value).lower()


@dataclasses.dataclass(frozen=True)
class Condition:
    path: str
    op: str
    value: Literal | tuple[Literal, ...] | QueryAst


@dataclasses.dataclass(frozen=True)
class Nested:
    path: str
    op: str  # has | any
    expression: Node


@dataclasses.dataclass(frozen=True)
class BoolOp:
    op: str  # and | or
    items: tuple[Node, ...]


@dataclasses.dataclass(frozen=True)
class NotOp:
    item: Node


Node = Condition | Nested | BoolOp | NotOp


@dataclasses.dataclass(frozen=True)
class QueryAst:
    type_name: str
    projections: tuple[str, ...] | None
    where: Node | None
    order: tuple[tuple[str, bool], ...]  # (path, descending)
    offset: int | None
    limit: int | None


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    def parse(self) -> QueryAst:
        query = self.query()
        if self.peek().kind != "end":
            self.fail(f"unexpected {self.peek().text!r}")
        return query

    def peek(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        token = self.tokens[self.i]
        if token.kind != "end":
            self.i += 1
        return token

    def fail(self, message: str, token: Token | None = None) -> None:
        token = token or self.peek()
        raise ParseError(_where(self.text, token.pos, message))

    def expect_word(self, *words: str) -> Token:
        token = self.take()
        if not token.is_word(*words):
            self.fail(f"expected {' or '.join(words)!r}, found {token.text or 'the end'!r}", token)
        return token

    def expect_punct(self, char: str) -> None:
        token = self.take()
        if token.kind != "punct" or token.text != char:
            self.fail(f"expected {char!r}, found {token.text or 'the end'!r}", token)

    def name(self, what: str) -> str:
        token = self.take()
        if token.kind != "word" or token.text.lower() in _RESERVED:
            self.fail(f"expected {what}, found {token.text or 'the end'!r}", token)
        return token.text

    def query(self) -> QueryAst:
        projections: tuple[str, ...] | None = None
        if self.peek().is_word("select"):
            self.take()
            names = [self.name("an attribute to select")]
            while self.peek().kind == "punct" and self.peek().text == ",":
                self.take()
                names.append(self.name("an attribute to select"))
            self.expect_word("from")
            projections = tuple(names)
        type_name = self.name("an entity type")
        where = None
        if self.peek().is_word("where"):
            self.take()
            where = self.expression()
        order: list[tuple[str, bool]] = []
        offset = limit = None
        while True:
            token = self.peek()
            if token.is_word("order") and not order:
                self.take()
                self.expect_word("by")
                order.append(self.order_item())
                while self.peek().kind == "punct" and self.peek().text == ",":
                    self.take()
                    order.append(self.order_item())
            elif token.is_word("offset") and offset is None:
                self.take()
                offset = self.integer("offset")
            elif token.is_word("limit") and limit is None:
                self.take()
                limit = self.integer("limit")
            else:
                break
        return QueryAst(type_name, projections, where, tuple(order), offset, limit)

    def order_item(self) -> tuple[str, bool]:
        path = self.name("an attribute to order by")
        descending = False
        if self.peek().is_word("ascending", "asc", "descending", "desc"):
            descending = self.take().text.lower().startswith("desc")
        return path, descending

    def integer(self, what: str) -> int:
        token = self.take()
        if token.kind != "word" or not token.text.isdigit():
            self.fail(f"{what} needs a whole number, found {token.text or 'the end'!r}", token)
        return int(token.text)

    def expression(self) -> Node:
        items = [self.conjunction()]
        while self.peek().is_word("or"):
            self.take()
            items.append(self.conjunction())
        return items[0] if len(items) == 1 else BoolOp("or", tuple(items))

    def conjunction(self) -> Node:
        items = [self.negation()]
        while self.peek().is_word("and"):
            self.take()
            items.append(self.negation())
        return items[0] if len(items) == 1 else BoolOp("and", tuple(items))

    def negation(self) -> Node:
        if self.peek().is_word("not"):
            self.take()
            return NotOp(self.negation())
        return self.primary()

    def primary(self) -> Node:
        token = self.peek()
        if token.kind == "punct" and token.text == "(":
            self.take()
            node = self.expression()
            self.expect_punct(")")
            return node
        if token.kind != "word":
            self.fail(f"expected a condition, found {token.text or 'the end'!r}")
        return self.condition()

    def condition(self) -> Node:
        path = self.name("an attribute")
        op = self.operator()
        if op in ("has", "any"):
            self.expect_punct("(")
            expression = self.expression()
            self.expect_punct(")")
            return Nested(path, op, expression)
        if op in ("in", "not_in"):
            self.expect_punct("(")
            if self.peek().is_word("select"):
                subquery = self.query()
                self.expect_punct(")")
                return Condition(path, op, subquery)
            values: list[Literal] = []
            if not (self.peek().kind == "punct" and self.peek().text == ")"):
                values.append(self.value())
                while self.peek().kind == "punct" and self.peek().text == ",":
                    self.take()
                    values.append(self.value())
            self.expect_punct(")")
            return Condition(path, op, tuple(values))
        return Condition(path, op, self.value())

    def operator(self) -> str:
        token = self.take()
        if token.kind == "op":
            return _SYMBOL_OPERATORS[token.text]
        word = token.text.lower() if token.kind == "word" else ""
        if word == "is" and self.peek().is_word("not"):
            self.take()
            return "is_not"
        if word == "not" and self.peek().is_word("in", "like"):
            return "not_" + self.take().text.lower()
        if word in _WORD_OPERATORS:
            return word
        self.fail(f"expected an operator, found {token.text or 'the end'!r}", token)
        raise AssertionError  # unreachable: fail raises

    def value(self) -> Literal:
        token = self.take()
        if token.kind == "string":
            return Literal("string", _unquote(token.text))
        if token.kind != "word" or token.text.lower() in _RESERVED:
            self.fail(f"expected a value, found {token.text or 'the end'!r}", token)
        lowered = token.text.lower()
        if lowered in ("none", "null"):
            return Literal("none", None)
        if lowered in ("true", "false"):
            return Literal("bool", lowered == "true")
        if _NUMBER.fullmatch(token.text):
            return Literal("number", token.text)
        return Literal("word", token.text)


_RESERVED = {"select", "from", "where", "and", "or", "not", "order", "by", "offset", "limit"}


def _unquote(text: str) -> str:
    body = text[1:-1]
    return re.sub(r"\\(.)", r"\1", body)


def parse(text: str) -> QueryAst:
    if not isinstance(text, str) or not text.strip():
        raise ParseError("Malformed query: the expression is empty.")
    return _Parser(text).parse()


# -- compiling --------------------------------------------------------------------------

Predicate = Callable[[Record], bool]


@dataclasses.dataclass(frozen=True)
class Step:
    name: str
    prop: Prop
    #: The type the attribute was looked up on.
    owner: str
    #: Concrete types under ``owner`` that have the attribute.
    types: frozenset[str]


@dataclasses.dataclass
class Plan:
    """A compiled condition: a predicate and, when an index can answer it, candidates."""

    predicate: Predicate
    #: Returns (candidate rows by ``__seq__``, residual predicate or ``None`` if exact).
    narrow: Callable[[], tuple[dict[int, Record], Predicate | None] | None]


class _Compiler:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.schema = store.schema

    # paths

    def path(self, type_name: str, path: str) -> list[Step]:
        parts = path.split(".")
        if any(not p for p in parts):
            raise ParseError(f"Malformed query: invalid attribute path '{path}'.")
        steps = []
        current = type_name
        for i, part in enumerate(parts):
            try:
                prop = self.schema.prop(current, part)
            except UnknownAttributeError:
                where = f" in '{path}'" if len(parts) > 1 else ""
                raise UnknownAttributeError(
                    f"Unknown attribute '{part}'{where} on entity type '{current}'."
                ) from None
            steps.append(Step(part, prop, current, self.schema.having(current, part)))
            if isinstance(prop, Ref | Coll):
                current = prop.target
            elif i != len(parts) - 1:
                raise UnknownAttributeError(
                    f"Attribute '{part}' of '{current}' is a value, not a relation; "
                    f"cannot follow '{path}'."
                )
        return steps

    def follow(self, record: Record, step: Step) -> list[Record]:
        if record[TYPE] not in step.types:
            return []
        prop = step.prop
        if isinstance(prop, Ref):
            target = self.store.resolve(prop.target, record.get(prop.fk))
            return [target] if target is not None else []
        if isinstance(prop, Coll):
            return self.store.collection(record, prop)
        return []

    def reach(self, record: Record, steps: list[Step]) -> list[Record]:
        """Entities at the end of a relation path."""
        records = [record]
        for step in steps:
            records = [t for r in records for t in self.follow(r, step)]
            if not records:
                break
        return records

    def values(self, record: Record, steps: list[Step]) -> list[Any]:
        """Values at the end of *steps*; ``None`` where the path runs into nothing."""
        records = self.reach(record, steps[:-1]) if len(steps) > 1 else [record]
        if not records:
            return [None]
        last = steps[-1]
        prop = last.prop
        out: list[Any] = []
        for r in records:
            if r[TYPE] not in last.types:
                out.append(None)
            elif isinstance(prop, Scalar):
                out.append(r.get(last.name))
            elif isinstance(prop, Link):
                out.append(self.store.link(r))
            elif isinstance(prop, Ref):
                out.append(r.get(prop.fk))
            else:
                out.extend(i.get("id") for i in self.store.collection(r, prop))
        return out or [None]

    # conditions

    def node(self, type_name: str, node: Node) -> Plan:
        if isinstance(node, Condition):
            return self.condition(type_name, node)
        if isinstance(node, Nested):
            return self.nested(type_name, node)
        if isinstance(node, NotOp):
            inner = self.node(type_name, node.item).predicate
            return Plan(lambda r: not inner(r), lambda: None)
        plans = [self.node(type_name, item) for item in node.items]
        predicates = [p.predicate for p in plans]
        if node.op == "and":
            return Plan(lambda r: all(p(r) for p in predicates), lambda: _narrow_and(plans))
        return Plan(lambda r: any(p(r) for p in predicates), lambda: _narrow_or(plans))

    def condition(self, type_name: str, node: Condition) -> Plan:
        steps = self.path(type_name, node.path)
        last = steps[-1]
        if isinstance(node.value, QueryAst):
            operands = self.subquery_values(node.value)
        elif isinstance(node.value, tuple):
            operands = [self.operand(last, v, node.path) for v in node.value]
        else:
            operands = [self.operand(last, node.value, node.path)]
        test = _comparison(node.op, operands)
        if len(steps) == 1 and isinstance(last.prop, Scalar):
            name, types = last.name, last.types

            def predicate(record: Record) -> bool:
                return test(record.get(name) if record[TYPE] in types else None)
        else:

            def predicate(record: Record) -> bool:
                return any(test(v) for v in self.values(record, steps))

        def narrow() -> tuple[dict[int, Record], Predicate | None] | None:
            if node.op not in ("is", "in") or any(v is None for v in operands):
                return None
            rows = self.matching(steps, operands)
            return None if rows is None else ({r[SEQ]: r for r in rows}, None)

        return Plan(predicate, narrow)

    def nested(self, type_name: str, node: Nested) -> Plan:
        steps = self.path(type_name, node.path)
        last = steps[-1].prop
        if not isinstance(last, Ref | Coll):
            raise ParseError(
                f"Malformed query: '{node.op}' needs a relation, but '{node.path}' is a value."
            )
        inner = self.node(last.target, node.expression)
        test = inner.predicate

        def predicate(record: Record) -> bool:
            return any(test(e) for e in self.reach(record, steps))

        def narrow() -> tuple[dict[int, Record], Predicate | None] | None:
            narrowed = inner.narrow()
            if narrowed is None:
                return None
            targets, residual = narrowed
            rows = self.walk_back(steps, list(targets.values()))
            if rows is None:
                return None
            return {r[SEQ]: r for r in rows}, (None if residual is None else predicate)

        return Plan(predicate, narrow)

    def operand(self, step: Step, literal: Literal, path: str) -> Any:
        """Convert a query literal to the type of the attribute it is compared with."""
        if literal.kind == "none":
            return None
        prop = step.prop
        what = f"'{path}'"
        if isinstance(prop, Scalar):
            if prop.format == "date-time":
                if literal.kind in ("string", "word"):
                    return normalise_datetime(literal.value, what)
                raise ValidationError(f"{what} is a date-time; {literal.text!r} is not.")
            if prop.type in ("integer", "number"):
                if literal.kind == "bool":
                    raise ValidationError(f"{what} is a number; {literal.text!r} is not.")
                try:
                    number = float(literal.value)
                except ValueError:
                    raise ValidationError(f"{what} is a number; {literal.text!r} is not.") from None
                return int(number) if number.is_integer() else number
            if prop.type == "boolean":
                if literal.kind == "bool":
                    return literal.value
                if literal.text.lower() in ("true", "1"):
                    return True
                if literal.text.lower() in ("false", "0"):
                    return False
                raise ValidationError(f"{what} is true or false; {literal.text!r} is neither.")
        return literal.text

    def subquery_values(self, ast: QueryAst) -> list[Any]:
        if not ast.projections or len(ast.projections) != 1:
            raise ParseError("Malformed query: a subquery must select exactly one attribute.")
        compiled = CompiledQuery(self.store, ast)
        steps = self.path(ast.type_name, ast.projections[0])
        return [v for r in compiled.matching() for v in self.values(r, steps) if v is not None]

    # narrowing through indexes

    def matching(self, steps: list[Step], values: list[Any]) -> list[Record] | None:
        """Rows of the path's first type that reach one of *values* (``is``/``in``)."""
        last = steps[-1]
        prop = last.prop
        if isinstance(prop, Scalar):
            column = last.name
        elif isinstance(prop, Ref):
            column = prop.fk
        else:
            return None
        # Scanning a related table without an index only pays when the table is small.
        unindexed = len(steps) > 1 and not self.store.is_indexed(last.owner, column)
        if unindexed and self.store.count(last.owner) > 5000:
            return None
        rows = [
            r for r in self.store.lookup_many(last.owner, column, values) if r[TYPE] in last.types
        ]
        return self.walk_back(steps[:-1], rows)

    def walk_back(self, steps: list[Step], targets: list[Record]) -> list[Record] | None:
        """Turn rows reached through *steps* into the rows they were reached from."""
        rows = targets
        for step in reversed(steps):
            rows = self.reverse(step, rows)
            if rows is None:
                return None
            if not rows:
                break
        return rows

    def reverse(self, step: Step, targets: list[Record]) -> list[Record] | None:
        prop = step.prop
        store = self.store
        if isinstance(prop, Ref):
            ids = {t["id"] for t in targets if "id" in t}
            return [r for r in store.lookup_many(step.owner, prop.fk, ids) if r[TYPE] in step.types]
        if not isinstance(prop, Coll) or prop.through is not None:
            return None
        if prop.computed == "ancestors":
            found = {r[SEQ]: r for t in targets for r in store.descendants(t)}
            return [r for r in found.values() if r[TYPE] in step.types]
        if prop.computed == "descendants":
            found = {r[SEQ]: r for t in targets for r in store.parent_chain(t)}
            return [r for r in found.values() if r[TYPE] in step.types]
        owner_ids = {
            t.get(prop.fk)
            for t in targets
            if all(t.get(column) == value for column, value in prop.where)
        }
        owners = (store.resolve(step.owner, i, strict=True) for i in owner_ids)
        return [o for o in owners if o is not None and o[TYPE] in step.types]


def _comparison(op: str, operands: list[Any]) -> Callable[[Any], bool]:
    if op in ("in", "not_in"):
        hashable = all(isinstance(v, str | int | float | bool) for v in operands)
        pool: Any = set(operands) if hashable else operands
        if op == "in":
            return lambda v: v is not None and _member(v, pool)
        return lambda v: not _member(v, pool)
    operand = operands[0]
    if op == "is":
        return lambda v: v == operand
    if op == "is_not":
        return lambda v: v != operand
    if op in ("like", "not_like"):
        pattern = _like(str(operand))
        if op == "like":
            return lambda v: v is not None and pattern.fullmatch(str(v)) is not None
        return lambda v: v is not None and pattern.fullmatch(str(v)) is None
    compare = {
        "<": lambda a, b: a < b,
        ">": lambda a, b: a > b,
        "<=": lambda a, b: a <= b,
        ">=": lambda a, b: a >= b,
        "before": lambda a, b: a < b,
        "after": lambda a, b: a > b,
    }[op]

    def ordered(value: Any) -> bool:
        if value is None or operand is None:
            return False
        try:
            return bool(compare(value, operand))
        except TypeError:
            return False

    return ordered


def _member(value: Any, pool: Any) -> bool:
    try:
        return value in pool
    except TypeError:
        return False


def _like(pattern: str) -> re.Pattern[str]:
    """SQL ``LIKE``: ``%`` any run, ``_`` one character; case-insensitive, as MySQL's."""
    parts = []
    for char in pattern:
        parts.append(".*" if char == "%" else "." if char == "_" else re.escape(char))
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


def _narrow_and(plans: list[Plan]) -> tuple[dict[int, Record], Predicate | None] | None:
    results = [(plan, plan.narrow()) for plan in plans]
    known = [(plan, r) for plan, r in results if r is not None]
    if not known:
        return None
    known.sort(key=lambda item: len(item[1][0]))
    candidates = dict(known[0][1][0])
    for _, (rows, _) in known[1:]:
        candidates = {seq: r for seq, r in candidates.items() if seq in rows}
    residuals: list[Predicate] = [r[1] for _, r in known if r[1] is not None]
    residuals.extend(plan.predicate for plan, r in results if r is None)
    if not residuals:
        return candidates, None
    return candidates, lambda record: all(p(record) for p in residuals)


def _narrow_or(plans: list[Plan]) -> tuple[dict[int, Record], Predicate | None] | None:
    candidates: dict[int, Record] = {}
    exact = True
    for plan in plans:
        result = plan.narrow()
        if result is None:
            return None
        candidates.update(result[0])
        exact = exact and result[1] is None
    if exact:
        return candidates, None
    predicates = [p.predicate for p in plans]
    return candidates, lambda record: any(p(record) for p in predicates)


# -- running --------------------------------------------------------------------------


class CompiledQuery:
    def __init__(self, store: Store, ast: QueryAst) -> None:
        self.store = store
        self.ast = ast
        self.compiler = _Compiler(store)
        schema = store.schema
        self.type = schema.get(ast.type_name)
        self.projection = self._projection_tree(ast.projections)
        self.plan = self.compiler.node(ast.type_name, ast.where) if ast.where else None
        self.order = [(self.compiler.path(ast.type_name, p), desc) for p, desc in ast.order]
        for steps, _ in self.order:
            if not isinstance(steps[-1].prop, Scalar):
                raise ParseError(f"Malformed query: cannot order by '{steps[-1].name}'.")

    def _projection_tree(self, projections: Iterable[str] | None) -> dict[str, Any]:
        if projections is None:
            projections = self.type.default_projections
        tree: dict[str, Any] = {}
        for projection in projections:
            self.compiler.path(self.ast.type_name, projection)
            node = tree
            for part in projection.split("."):
                node = node.setdefault(part, {})
        return tree

    def matching(self, stop_after: int | None = None) -> list[Record]:
        """Rows matching the condition, in creation order (at most *stop_after*)."""
        predicate: Predicate | None = None
        if self.plan is None:
            candidates = list(self.store.rows(self.ast.type_name))
        else:
            narrowed = self.plan.narrow()
            if narrowed is None:
                candidates = list(self.store.rows(self.ast.type_name))
                predicate = self.plan.predicate
            else:
                rows, predicate = narrowed
                concrete = set(self.store.schema.concrete[self.ast.type_name])
                candidates = [r for r in rows.values() if r[TYPE] in concrete]
        candidates.sort(key=by_seq)
        if predicate is None:
            return candidates if stop_after is None else candidates[:stop_after]
        out = []
        for record in candidates:
            if predicate(record):
                out.append(record)
                if stop_after is not None and len(out) >= stop_after:
                    break
        return out

    def run(self) -> dict[str, Any]:
        """The ``query`` response: rows of one page and the next page's offset."""
        offset = self.ast.offset or 0
        limit = self.ast.limit
        if self.order or limit is None:
            rows = self.matching()
            if self.order:
                rows = self._sorted(rows)
        else:
            # One row past the page tells whether another page exists.
            rows = self.matching(stop_after=offset + limit + 1)
        page = rows[offset:] if limit is None else rows[offset : offset + limit]
        more = limit is not None and len(rows) > offset + limit
        return {
            "action": "query",
            "data": [self.render(r, self.projection, top=True) for r in page],
            "metadata": {"next": {"offset": offset + limit if more else None}},
        }

    def all_rows(self) -> list[dict[str, Any]]:
        """Every matching row, rendered, honouring order, offset and limit (no paging)."""
        rows = self.matching()
        if self.order:
            rows = self._sorted(rows)
        start = self.ast.offset or 0
        end = None if self.ast.limit is None else start + self.ast.limit
        return [self.render(r, self.projection, top=True) for r in rows[start:end]]

    def _sorted(self, rows: list[Record]) -> list[Record]:
        for steps, descending in reversed(self.order):

            def key(record: Record, steps: list[Step] = steps) -> tuple[int, Any]:
                value = self.compiler.values(record, steps)[0]
                return (0, "") if value is None else (1, value)

            try:
                rows = sorted(rows, key=key, reverse=descending)
            except TypeError:
                rows = sorted(rows, key=lambda r: str(key(r)), reverse=descending)
        return rows

    def render(self, record: Record, tree: dict[str, Any], top: bool) -> dict[str, Any]:
        """A row as the server returns it: type, key, system fields, projections."""
        schema = self.store.schema
        t = schema.types[record[TYPE]]
        row: dict[str, Any] = {TYPE: t.name}
        for column in t.primary_key:
            row[column] = record.get(column)
        if top:
            for column in t.system_projections:
                row[column] = encode_value(t.properties[column], record.get(column))
        for name, subtree in tree.items():
            prop = t.properties.get(name)
            if prop is None:
                continue  # another subtype of a polymorphic query has it
            if isinstance(prop, Scalar):
                row[name] = encode_value(prop, record.get(name))
            elif isinstance(prop, Link):
                row[name] = self.store.link(record)
            elif isinstance(prop, Ref):
                target = self.store.follow(record, prop)
                row[name] = None if target is None else self.render(target, subtree, top=False)
            else:
                items = self.store.collection(record, prop)
                row[name] = [self.render(i, subtree, top=False) for i in items]
        return row


def encode_value(prop: Prop, value: Any) -> Any:
    if value is not None and isinstance(prop, Scalar) and prop.format == "date-time":
        return {"__type__": "datetime", "value": value}
    return value


def execute(store: Store, expression: str) -> dict[str, Any]:
    """Parse, compile and run *expression* (the caller holds the store lock)."""
    return CompiledQuery(store, parse(expression)).run()
