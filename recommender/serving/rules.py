"""The language of business rules: filters and boosters over item fields and typed
attributes, the requesting user's attributes, the request context and named parameters.

``parse`` reads a text with a lark LALR grammar (``GRAMMAR``) into a typed tree;
``to_sql`` binds a request's values to it and compiles it to a PostgreSQL fragment over
the item table. The SQL is built only from the fixed fragments of this module, the
caller's table name (checked to be an identifier) and ``%s`` placeholders: no value and no
name from a rule is ever formatted into it (an attribute's name is a parameter too).
docs/rules.md is the language reference.

Semantics, briefly (SQL's three-valued logic throughout):

* a comparison with a missing value (an item without the attribute, a stored value of
  the wrong type, a user attribute or context key that is not there) is never true, and
  neither is its negation: ``not (price < 3)`` skips items without a price;
* a set attribute that is missing or not a JSON array is the empty set;
* a number divided by zero is missing; arithmetic runs in SQL ``numeric`` so it cannot
  overflow, and a booster's result is rounded to 20 decimal places;
* a booster that is missing for an item is ``neutral`` (a ``to_sql`` argument).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.utils import timezone
from lark import Lark, Token, Transformer_NonRecursive, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken, VisitError

FIELD_TYPES = ("number", "string", "set", "boolean", "timestamp")
NUMBER, STRING, SET, BOOLEAN, TIMESTAMP = FIELD_TYPES
# Types of values that only expressions have: a duration (``days(7)``), a list (a user
# attribute, context key or parameter holding one), a tuple (``("a", "b")``), the type of
# a missing reference (SQL NULL) and, while parsing, of a reference not yet bound.
DURATION, LIST, TUPLE, NULL, ANY = "duration", "list", "tuple", "null", "any"

MAX_LENGTH = 2000
# Nesting deeper than this is an error, not a stack overflow; the compiler recurses once
# or twice per level, far below Python's limit. A chain of ``and``s or ``or``s is one level.
MAX_DEPTH = 64
# Durations beyond 100 years are errors when written as numbers and clamped when computed
# from an item's values, so timestamp arithmetic stays inside PostgreSQL's range.
MAX_DURATION_SECONDS = 100 * 365.25 * 86400
# A tuple this short against a string or boolean attribute is matched with one indexable
# containment test per member (a GIN bitmap OR), a longer one with ``= ANY``.
_MAX_CONTAINMENT_ALTERNATIVES = 16

GRAMMAR = r"""
?start: expr

?expr: and_test (_OR and_test)+ -> or_
     | and_test
?and_test: not_test (_AND not_test)+ -> and_
         | not_test
?not_test: NOT not_test -> not_
         | comparison
?comparison: sum COMPARE sum -> compare
           | sum _IN sum -> in_
           | sum NOT _IN sum -> not_in
           | sum
?sum: sum ADD_OP product -> arith
    | product
?product: product MUL_OP unary -> arith
        | unary
?unary: ADD_OP unary -> sign
      | atom
?atom: NUMBER -> number
     | STRING -> string
     | TRUE -> true
     | FALSE -> false
     | NAME -> field
     | NAME _DOT NAME -> dotted
     | PARAM -> param
     | NAME LPAR RPAR -> call
     | NAME LPAR expr (_COMMA expr)* RPAR -> call
     | LPAR expr RPAR -> paren
     | LPAR RPAR -> tuple
     | LPAR expr _COMMA RPAR -> tuple
     | LPAR expr (_COMMA expr)+ _COMMA? RPAR -> tuple

COMPARE: "==" | "!=" | "<=" | ">=" | "<" | ">"
ADD_OP: "+" | "-"
MUL_OP: "*" | "/"
NOT: "not"
TRUE: "true"
FALSE: "false"
_AND: "and"
_OR: "or"
_IN: "in"
_DOT: "."
_COMMA: ","
LPAR: "("
RPAR: ")"
PARAM: /\$[A-Za-z_][A-Za-z0-9_]*/
NAME: /[A-Za-z_][A-Za-z0-9_]*/
NUMBER: /(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?/
STRING: /"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'/
%ignore /[ \t\r\n]+/
"""

# The basic lexer: a keyword is never a name, even where a name is expected.
_PARSER = Lark(
    GRAMMAR, parser="lalr", lexer="basic", propagate_positions=True, maybe_placeholders=False
)


class RuleError(ValueError):
    """A rule that cannot be parsed, typed or bound: ``message`` and where (``position``,
    0-based into the text; ``line`` and ``column``, 1-based)."""

    def __init__(self, message: str, position: int = 0, line: int = 1, column: int = 1):
        self.message = message
        self.position = position
        self.line = line
        self.column = column
        super().__init__(message, position, line, column)

    def __str__(self) -> str:
        where = (
            f"line {self.line}, column {self.column}" if self.line > 1 else f"column {self.column}"
        )
        return f"{where}: {self.message}"

    @classmethod
    def at(cls, text: str, position: int, message: str) -> RuleError:
        """The error at ``position`` of ``text``, with its line and column."""
        position = max(0, min(position, len(text)))
        line = text.count("\n", 0, position) + 1
        column = position - (text.rfind("\n", 0, position) + 1) + 1
        return cls(message, position, line, column)


# --- The tree ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Node:
    """One node of a parsed rule: ``kind`` says what it is, ``value`` what is particular
    to it (a literal's value, a field's name, an operator), ``args`` its operands."""

    kind: str
    pos: int
    end: int
    args: tuple[_Node, ...] = ()
    value: Any = None
    depth: int = 1


_STRING_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "/": "/"}
_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|.)")


@v_args(meta=True)
class _Builder(Transformer_NonRecursive):
    """lark's parse tree → ``_Node``s, each spanning its ``meta`` (lark's positions), and
    without recursion: a tree too deep is refused here."""

    def __init__(self, text: str):
        super().__init__()
        self.text = text

    def _node(self, kind, meta, args=(), value=None, depth=None) -> _Node:
        if depth is None:
            depth = 1 + max((arg.depth for arg in args), default=0)
        if depth > MAX_DEPTH:
            raise RuleError.at(
                self.text,
                meta.start_pos,
                f"the rule is nested too deeply (at most {MAX_DEPTH} levels)",
            )
        return _Node(kind, meta.start_pos, meta.end_pos, tuple(args), value, depth)

    @staticmethod
    def _operands(children) -> list[_Node]:
        return [child for child in children if isinstance(child, _Node)]

    def number(self, meta, children):
        value = float(children[0])
        if not math.isfinite(value):
            raise RuleError.at(
                self.text, meta.start_pos, f"the number {children[0]} is out of range"
            )
        return self._node("number", meta, value=value)

    def string(self, meta, children):
        return self._node("string", meta, value=self._unquote(children[0]))

    def _unquote(self, token: Token) -> str:
        def replace(match: re.Match) -> str:
            escape = match.group(1)
            if escape[0] == "u" and len(escape) == 5:
                code = int(escape[1:], 16)
                if 0xD800 <= code <= 0xDFFF:
                    raise self._string_error(token, match, "\\u escapes of surrogates")
                return chr(code)
            if escape not in _STRING_ESCAPES:
                raise self._string_error(token, match, f"the escape \\{escape}")
            return _STRING_ESCAPES[escape]

        value = _ESCAPE.sub(replace, str(token)[1:-1])
        if "\x00" in value:
            raise RuleError.at(self.text, token.start_pos, "a string cannot hold the NUL character")
        return value

    def _string_error(self, token: Token, match: re.Match, what: str) -> RuleError:
        return RuleError.at(
            self.text,
            token.start_pos + 1 + match.start(),
            f"{what} is not allowed in a string (escapes: \\\" \\' \\\\ \\n \\t \\r \\uXXXX)",
        )

    def true(self, meta, children):
        return self._node("boolean", meta, value=True)

    def false(self, meta, children):
        return self._node("boolean", meta, value=False)

    def field(self, meta, children):
        return self._node("field", meta, value=str(children[0]))

    def dotted(self, meta, children):
        scope, name = map(str, children)
        if scope not in ("user", "context"):
            raise RuleError.at(
                self.text,
                meta.start_pos,
                f"unknown name '{scope}.{name}'; references are user.<name> "
                "(the user's attributes) and context.<name> (the request context)",
            )
        return self._node("ref", meta, value=(scope, name))

    def param(self, meta, children):
        return self._node("ref", meta, value=("param", children[0][1:]))

    def call(self, meta, children):
        return self._node("call", meta, self._operands(children), value=str(children[0]))

    def paren(self, meta, children):
        # Parentheses add a level: 500 of them around one value are a hostile rule too.
        inner = children[1]
        return self._node(inner.kind, meta, inner.args, inner.value, inner.depth + 1)

    def tuple(self, meta, children):
        return self._node("tuple", meta, self._operands(children))

    def sign(self, meta, children):
        operator, operand = children
        if operator == "+":
            return operand
        if operand.kind == "number":
            return self._node("number", meta, value=-operand.value)
        return self._node("neg", meta, (operand,))

    def arith(self, meta, children):
        left, operator, right = children
        return self._node("arith", meta, (left, right), value=str(operator))

    def compare(self, meta, children):
        left, operator, right = children
        return self._node("compare", meta, (left, right), value=str(operator))

    def in_(self, meta, children):
        return self._node("in", meta, self._operands(children), value=False)

    def not_in(self, meta, children):
        return self._node("in", meta, self._operands(children), value=True)

    def not_(self, meta, children):
        return self._node("not", meta, self._operands(children))

    def and_(self, meta, children):
        return self._node("and", meta, children)

    def or_(self, meta, children):
        return self._node("or", meta, children)


# --- Syntax errors in words ---------------------------------------------------------------

_VALUE_STARTS = {"NUMBER", "STRING", "PARAM", "TRUE", "FALSE"}
_OPERATORS = {"COMPARE", "ADD_OP", "MUL_OP", "_AND", "_OR", "_IN", "NOT"}


def _expected(names: set[str]) -> str:
    if names & _VALUE_STARTS:
        return "a value"
    parts = []
    if "NAME" in names:
        parts.append("a name")
    if "_COMMA" in names:
        parts.append("','")
    if "RPAR" in names:
        parts.append("')'")
    if names & _OPERATORS:
        parts.append("an operator")
    if not parts:
        return "the end of the rule"
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " or " + parts[-1]


def _shown(token: Token) -> str:
    text = str(token)
    return repr(text if len(text) <= 24 else text[:20] + "…")


def _syntax_error(
    text: str, exc: UnexpectedInput, previous: Token | None, accepts: set[str]
) -> RuleError:
    """``exc`` in words: what came, after what, and what was ``accepts``-ed there."""
    if isinstance(exc, UnexpectedCharacters):
        position = exc.pos_in_stream
        char = text[position]
        if char in "\"'":
            message = "this string has no closing quote on its line"
        elif char == "=" or (char == "!" and text[position + 1 : position + 2] != "="):
            message = f"unexpected {char!r}: compare with '==' or '!='"
        elif char == "$":
            message = "a parameter is '$' followed by a name, like $max_price"
        else:
            message = f"unexpected character {char!r}"
        return RuleError.at(text, position, message)
    if isinstance(exc, UnexpectedToken) and exc.token.type != "$END":
        token, wanted = exc.token, _expected(accepts)
        if token.type == "RPAR" and "RPAR" not in accepts and wanted != "a value":
            message = "this ')' closes no '('"
        elif previous is None:
            message = f"expected {wanted} at the start, not {_shown(token)}"
        else:
            message = f"expected {wanted} after {_shown(previous)}, not {_shown(token)}"
        return RuleError.at(text, token.start_pos, message)
    # The end came too early.
    wanted = _expected(accepts)
    if previous is None:
        return RuleError.at(text, 0, "the rule is empty")
    return RuleError.at(text, len(text.rstrip()), f"expected {wanted} after {_shown(previous)}")


def _syntax_tree(text: str):
    """``text``'s lark tree; lark's errors in words (the previous token named)."""
    parser = _PARSER.parse_interactive(text)
    previous = last = None
    try:
        for token in parser.iter_parse():
            previous, last = last, token
        return parser.feed_eof(last)
    except UnexpectedToken as exc:
        # ``last`` is the refused token itself, unless the text ended too early.
        before = previous if exc.token is last else last
        raise _syntax_error(text, exc, before, parser.accepts()) from None
    except UnexpectedInput as exc:
        raise _syntax_error(text, exc, last, set()) from None


# --- Fields --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Column:
    column: str
    type: str


# The item table's own columns a rule may name: name → SQL column and type.
_COLUMNS = {
    "category": _Column("category", STRING),
    "title": _Column("title", STRING),
    "external_id": _Column("external_id", STRING),
    "tags": _Column("tags", SET),
    "created_at": _Column("created_at", TIMESTAMP),
    "updated_at": _Column("updated_at", TIMESTAMP),
    "available_from": _Column("available_from", TIMESTAMP),
    "available_until": _Column("available_until", TIMESTAMP),
}
# The typed readers of the attributes (migration 0016): NULL for a value of another type.
_READERS = {
    NUMBER: "recommender_attr_number",
    STRING: "recommender_attr_text",
    BOOLEAN: "recommender_attr_bool",
    TIMESTAMP: "recommender_attr_time",
}
_SQL_TYPES = {
    NUMBER: "float8",
    STRING: "text",
    BOOLEAN: "boolean",
    TIMESTAMP: "timestamptz",
    DURATION: "interval",
}
_COMPARE_SQL = {"==": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_ARITH_SQL = {"+": "+", "-": "-", "*": "*", "/": "/"}
# min() and max(): PostgreSQL's strict two-argument built-ins (those of its min and max
# aggregates), so a missing argument makes a missing result.
_EXTREMES = {
    ("min", "float8"): "float8smaller",
    ("max", "float8"): "float8larger",
    ("min", "numeric"): "numeric_smaller",
    ("max", "numeric"): "numeric_larger",
    ("min", "timestamptz"): "timestamptz_smaller",
    ("max", "timestamptz"): "timestamptz_larger",
}
_DURATION_SECONDS = {"days": 86400, "hours": 3600, "minutes": 60}
_FUNCTIONS = ("days", "exists", "hours", "if", "max", "min", "minutes", "now")
_A = {
    NUMBER: "a number",
    STRING: "a string",
    SET: "a set",
    BOOLEAN: "a condition (true or false)",
    TIMESTAMP: "a timestamp",
    DURATION: "a duration",
    LIST: "a list",
    TUPLE: "a tuple",
    NULL: "missing",
    ANY: "a reference",
}
_TABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?\Z")


def _clamp(sql: str, limit: str) -> str:
    """``sql`` (a numeric) clamped to ±``limit``, NULL staying NULL: the strict built-ins
    behind min()/max() aggregates, not LEAST/GREATEST, which skip a NULL."""
    return f"numeric_larger(numeric_smaller({sql}, {limit}), -{limit})"


# --- Rules -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """A parsed and type-checked rule (made by ``parse``): hashable and reusable; compile
    it for a request with ``to_sql``."""

    text: str
    kind: str  # "filter" | "boost"
    schema: tuple[tuple[str, str], ...] = ()
    tree: _Node | None = field(default=None, repr=False, compare=False)
    _references: frozenset[str] = field(default=frozenset(), repr=False, compare=False)
    # Whether it calls now(): its verdict on an item may change as time passes.
    uses_now: bool = field(default=False, repr=False, compare=False)

    def references(self) -> frozenset[str]:
        """The user attributes, context keys and parameters the rule reads, e.g.
        ``{"user.segment", "context.device", "$max_price"}``."""
        return self._references


def parse(text: str, kind: str = "filter", schema: Mapping[str, str] | None = None) -> Rule:
    """``text`` parsed and type-checked as a ``kind`` rule ("filter": a condition;
    "boost": a number) over the item fields and ``schema``'s typed attributes (name →
    one of ``FIELD_TYPES``). Raises ``RuleError``; a malformed ``schema`` or ``kind`` is
    a ``ValueError`` of the caller's."""
    if kind not in ("filter", "boost"):
        raise ValueError(f"kind must be 'filter' or 'boost', not {kind!r}")
    frozen = tuple(sorted((schema or {}).items()))
    for name, type_ in frozen:
        if type_ not in FIELD_TYPES:
            raise ValueError(
                f"attribute {name!r} has the unknown type {type_!r}; types: "
                + ", ".join(FIELD_TYPES)
            )
    return _parse(text, kind, frozen)


@functools.lru_cache(maxsize=1024)
def _parse(text: str, kind: str, schema: tuple[tuple[str, str], ...]) -> Rule:
    if not isinstance(text, str):
        raise TypeError(f"a rule is a str, not {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise RuleError.at(text, MAX_LENGTH, f"the rule is longer than {MAX_LENGTH} characters")
    if not text.strip():
        raise RuleError.at(text, 0, "the rule is empty")
    tree = _syntax_tree(text)
    try:
        root = _Builder(text).transform(tree)
    except VisitError as exc:
        if isinstance(exc.orig_exc, RuleError):
            raise exc.orig_exc from None
        raise
    rule = Rule(text, kind, schema, root, frozenset(_references(root)), _calls_now(root))
    _Compiler(rule).compile()  # the type check: references are not bound yet
    return rule


def _calls_now(node: _Node) -> bool:
    stack = [node]
    while stack:  # no recursion: a tree may be MAX_DEPTH deep
        node = stack.pop()
        if node.kind == "call" and node.value == "now":
            return True
        stack.extend(node.args)
    return False


def _references(node: _Node):
    if node.kind == "ref":
        scope, name = node.value
        yield f"${name}" if scope == "param" else f"{scope}.{name}"
    for arg in node.args:
        yield from _references(arg)


def to_sql(
    rule: Rule,
    *,
    table: str = "recommender_item",
    user: Mapping | None = None,
    context: Mapping | None = None,
    params: Mapping | None = None,
    now: datetime | None = None,
    neutral: float = 1.0,
) -> tuple[str, list]:
    """``rule`` compiled for one request: a SQL boolean condition (a filter) or float8
    expression (a booster, ``neutral`` where it is missing) over ``table``'s columns, and
    its parameters in order. ``user``, ``context`` and ``params`` supply the references
    (a missing user attribute or context key is SQL NULL, a missing parameter a
    ``RuleError``); ``now`` is ``now()`` (default: the current time, bound as a
    parameter). Raises ``RuleError`` when a bound value does not fit its place."""
    if not math.isfinite(neutral):
        raise ValueError("neutral must be a finite number")
    return _bound(rule, table, user, context, params, now, neutral).compile()


def _bound(rule, table, user, context, params, now, neutral=1.0) -> _Compiler:
    if rule.tree is None:
        rule = parse(rule.text, rule.kind, dict(rule.schema))
    if not _TABLE.match(table):
        raise ValueError(f"table must be an SQL identifier, not {table!r}")
    moment = now if now is not None else timezone.now()
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    bindings = _Bindings(user or {}, context or {}, params or {}, moment)
    return _Compiler(rule, bindings, table, float(neutral))


@dataclass(frozen=True)
class Clock:
    """When a rule's verdict on an item may change as time passes (``clock``). A rule
    reads the clock only through ``now()``; where each ``now()`` sits in a comparison
    with a constant or an item's timestamp, give or take constant durations
    (``available_until > now()``, ``created_at > now() - days(7)``), that comparison
    changes at one moment per item: ``moments`` (known ones) and ``columns`` (timestamptz
    SQL over the item table, with their parameters). ``settled`` is False when a
    ``now()`` sits anywhere else (``max(now(), …)``, ``now() - days(<a field>)``): the
    moments cannot be told, and any moment may change the verdict."""

    settled: bool = True
    moments: tuple[datetime, ...] = ()
    columns: tuple[tuple[str, tuple], ...] = ()


def clock(
    rule: Rule,
    *,
    table: str = "recommender_item",
    user: Mapping | None = None,
    context: Mapping | None = None,
    params: Mapping | None = None,
    now: datetime | None = None,
) -> Clock:
    """``rule``'s ``Clock`` as compiled for one request (the arguments of ``to_sql``).
    Every verdict holds until the first of its moments: between two of them, no
    comparison of the rule changes, so neither does what they make together."""
    if rule.tree is None:
        rule = parse(rule.text, rule.kind, dict(rule.schema))
    if not rule.uses_now:
        return Clock()
    compiler = _bound(rule, table, user, context, params, now)
    compiler.compile()
    return Clock(
        compiler.now_calls == compiler.now_settled,
        tuple(compiler.moments),
        tuple(compiler.columns),
    )


# --- Compiling ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Bindings:
    user: Mapping
    context: Mapping
    params: Mapping
    now: datetime


class _Unknown:
    def __repr__(self) -> str:
        return "<unknown>"


_UNKNOWN = _Unknown()  # the value of an expression only the database knows


@dataclass
class _Expr:
    """A compiled (sub)expression: its type, SQL and parameters, and what more is known."""

    type: str
    node: _Node
    sql: str = "NULL"
    params: list = field(default_factory=list)
    value: Any = _UNKNOWN  # the Python value, when known while compiling (None: NULL)
    numeric: bool = False  # a number computed in SQL numeric (arithmetic), not float8
    elem: str = ANY  # a LIST's element type
    items: tuple[_Expr, ...] = ()  # a TUPLE's members
    attribute: str | None = None  # a bare typed attribute: its name
    column: _Column | None = None  # a bare item column
    # A timestamp known to be ``now() + now_shift`` (``now()`` and constant durations), and
    # how many ``now()`` calls it holds: ``Clock``'s analysis of when a verdict can change.
    now_shift: timedelta | None = None
    now_uses: int = 0

    @property
    def known(self) -> bool:
        return self.value is not _UNKNOWN


class _Compiler:
    """Types a rule's tree and builds its SQL. Without bindings (while parsing) every
    reference is of type ANY and the SQL is discarded: that pass is the type check."""

    def __init__(self, rule: Rule, bindings: _Bindings | None = None, table="t", neutral=1.0):
        self.rule = rule
        self.text = rule.text
        self.schema = dict(rule.schema)
        self.bindings = bindings
        self.table = table
        self.neutral = neutral
        # ``Clock``: now() calls compiled, those in analysed comparisons, their moments.
        self.now_calls = 0
        self.now_settled = 0
        self.moments: list[datetime] = []
        self.columns: list[tuple[str, tuple]] = []

    def compile(self) -> tuple[str, list]:
        root = self.rule.tree
        if self.rule.kind == "filter":
            result = self.expr(root, truthy=True)
            if result.type not in (BOOLEAN, ANY, NULL):
                raise self.error(
                    root,
                    f"a filter must be a condition (true or false), but this is {_A[result.type]}",
                )
            result = self.condition(self.coerce(result, BOOLEAN), truthy=True)
            return result.sql, list(result.params)
        result = self.expr(root)
        if result.type == BOOLEAN:
            raise self.error(
                root,
                "a booster must be a number, but this is a condition: "
                "write if(<condition>, 1.2, 1.0)",
            )
        if result.type not in (NUMBER, ANY, NULL):
            raise self.error(root, f"a booster must be a number, but this is {_A[result.type]}")
        result = self.as_float8(self.coerce(result, NUMBER))
        return f"COALESCE({result.sql}, %s::float8)", [*result.params, self.neutral]

    # Helpers ------------------------------------------------------------------------------

    def error(self, node: _Node, message: str) -> RuleError:
        return RuleError.at(self.text, node.pos, message)

    def shown(self, node: _Node) -> str:
        text = " ".join(self.text[node.pos : node.end].split())
        return text if len(text) <= 40 else text[:36] + " …"

    def const(self, value, type_: str, node: _Node, numeric: bool = False) -> _Expr:
        """A value known while compiling, as a parameter (never as SQL text)."""
        if value is None:
            sql_type = "numeric" if numeric else _SQL_TYPES.get(type_)
            sql = f"NULL::{sql_type}" if sql_type else "NULL"
            return _Expr(type_, node, sql, [], None, numeric)
        if type_ == BOOLEAN:
            return _Expr(BOOLEAN, node, "TRUE" if value else "FALSE", [], value)
        sql_type = "numeric" if numeric else _SQL_TYPES[type_]
        return _Expr(type_, node, f"%s::{sql_type}", [value], value, numeric)

    def coerce(self, e: _Expr, want: str, allow_boolean: bool = False) -> _Expr:
        """``e`` as a ``want``: a missing or unbound reference takes the type; a known
        string may be a timestamp; a condition counts 0/1 where ``allow_boolean``."""
        if e.type == want:
            return e
        if e.type == NULL:
            return self.const(None, want, e.node)
        if e.type == ANY:
            return _Expr(want, e.node)
        if want == TIMESTAMP and e.type == STRING and e.known:
            return self.const(self.timestamp(e.value, e.node), TIMESTAMP, e.node)
        if want == NUMBER and e.type == BOOLEAN and allow_boolean:
            if e.known:
                return self.const(None if e.value is None else float(e.value), NUMBER, e.node)
            e = self.condition(e, truthy=True)
            return _Expr(
                NUMBER, e.node, f"(CASE WHEN {e.sql} THEN 1 ELSE 0 END)", e.params, numeric=True
            )
        raise self.mismatch(e, _A[want])

    def mismatch(self, e: _Expr, wanted: str) -> RuleError:
        if e.node.kind == "ref" and self.bindings is not None:
            return self.error(e.node, f"{self.shown(e.node)} holds {_A[e.type]}, not {wanted}")
        return self.error(e.node, f"{self.shown(e.node)} is {_A[e.type]}, not {wanted}")

    def timestamp(self, value: str, node: _Node) -> datetime:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise self.error(
                node, f"{self.shown(node)} is no timestamp (ISO 8601, e.g. 2024-05-01T12:00Z)"
            ) from None
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)

    def as_numeric(self, e: _Expr) -> _Expr:
        if e.numeric:
            return e
        if e.known:
            return self.const(e.value, NUMBER, e.node, numeric=True)
        return _Expr(NUMBER, e.node, f"({e.sql})::numeric", e.params, numeric=True)

    def as_float8(self, e: _Expr) -> _Expr:
        """A numeric result as float8: rounded, and clamped to float8's range, since a
        cast of a numeric beyond it is an error."""
        if not e.numeric:
            return e
        return _Expr(NUMBER, e.node, _clamp(f"round({e.sql}, 20)", "1e308") + "::float8", e.params)

    def same_repr(self, exprs: list[_Expr]) -> list[_Expr]:
        """Numbers side by side in one representation: numeric if any is."""
        if any(e.type == NUMBER and e.numeric for e in exprs):
            return [self.as_numeric(e) if e.type == NUMBER else e for e in exprs]
        return exprs

    def condition(self, e: _Expr, truthy: bool) -> _Expr:
        """A boolean expression; a bare boolean attribute where only truth matters as the
        indexable ``attributes @> {"name": true}``."""
        if truthy and e.attribute is not None and e.type == BOOLEAN:
            return self.contains_pair(e.attribute, True, BOOLEAN, e.node)
        return e

    def contains_pair(self, name: str, value, type_: str, node: _Node) -> _Expr:
        sql = f"{self.table}.attributes @> jsonb_build_object(%s::text, %s::{_SQL_TYPES[type_]})"
        return _Expr(BOOLEAN, node, f"({sql})", [name, value])

    def common_type(
        self, exprs: list[_Expr], node: _Node, verb: str = "compare", allow_boolean=False
    ) -> str:
        """The one type ``exprs`` share (ANY when none is known yet)."""
        types = {e.type for e in exprs} - {ANY, NULL}
        if allow_boolean and types == {NUMBER, BOOLEAN}:
            return NUMBER
        if types == {STRING, TIMESTAMP} and all(e.known for e in exprs if e.type == STRING):
            return TIMESTAMP
        if len(types) > 1:
            first = next(e for e in exprs if e.type in types)
            other = next(e for e in exprs if e.type in types and e.type != first.type)
            culprit = other if other.node.kind == "ref" or first.node.kind != "ref" else first
            raise self.error(
                culprit.node,
                f"cannot {verb} {self.shown(first.node)} ({_A[first.type]}) with "
                f"{self.shown(other.node)} ({_A[other.type]})",
            )
        return types.pop() if types else ANY

    # Nodes ---------------------------------------------------------------------------------

    def expr(self, node: _Node, truthy: bool = False) -> _Expr:
        """``node`` compiled; ``truthy``: only whether it is true matters (not whether it is
        false or missing), which allows the indexable forms."""
        return getattr(self, f"node_{node.kind}")(node, truthy)

    def node_number(self, node, truthy):
        return self.const(node.value, NUMBER, node)

    def node_string(self, node, truthy):
        return self.const(node.value, STRING, node)

    def node_boolean(self, node, truthy):
        return self.const(node.value, BOOLEAN, node)

    def node_tuple(self, node, truthy):
        return _Expr(TUPLE, node, items=tuple(self.expr(arg) for arg in node.args))

    def node_field(self, node, truthy):
        name = node.value
        if name in _COLUMNS:
            column = _COLUMNS[name]
            sql = f"{self.table}.{column.column}"
            return _Expr(column.type, node, sql, column=column)
        if name in self.schema:
            type_ = self.schema[name]
            if type_ == SET:
                return _Expr(SET, node, attribute=name)
            sql = f"{_READERS[type_]}({self.table}.attributes -> %s::text)"
            return _Expr(type_, node, sql, [name], attribute=name)
        known = ", ".join(sorted({*_COLUMNS, *self.schema}))
        raise self.error(node, f"unknown field '{name}'; known: {known}")

    def lookup(self, node: _Node):
        """A reference's bound value; _UNKNOWN while parsing, None when missing."""
        if self.bindings is None:
            return _UNKNOWN
        scope, name = node.value
        if scope == "param":
            if name not in self.bindings.params:
                raise self.error(node, f"parameter ${name} is not given")
            return self.bindings.params[name]
        return getattr(self.bindings, scope).get(name)

    def node_ref(self, node, truthy):
        value = self.lookup(node)
        if value is _UNKNOWN:
            return _Expr(ANY, node)
        if isinstance(value, list | tuple | set | frozenset):
            members = [self.scalar(member, node) for member in value]
            types = {type_ for type_, _ in members if type_ != NULL}
            if len(types) > 1:
                raise self.error(node, f"{self.shown(node)} mixes " + " and ".join(sorted(types)))
            elem = types.pop() if types else ANY
            return _Expr(LIST, node, value=[member for _, member in members], elem=elem)
        type_, value = self.scalar(value, node)
        return self.const(value, type_, node)

    def scalar(self, value, node: _Node) -> tuple[str, Any]:
        """A bound value's type and the value as it is bound."""
        if value is None:
            return NULL, None
        if isinstance(value, bool):
            return BOOLEAN, value
        if isinstance(value, int | float | Decimal):
            try:
                number = float(value)
            except OverflowError:
                number = math.inf
            if not math.isfinite(number):
                raise self.error(node, f"{self.shown(node)} holds a number out of range")
            return NUMBER, number
        if isinstance(value, str):
            if "\x00" in value:
                raise self.error(node, f"{self.shown(node)} holds the NUL character")
            return STRING, value
        if isinstance(value, datetime):
            return TIMESTAMP, value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        if isinstance(value, date):
            return TIMESTAMP, datetime(value.year, value.month, value.day, tzinfo=UTC)
        kind = "an object" if isinstance(value, Mapping) else f"a {type(value).__name__}"
        raise self.error(node, f"{self.shown(node)} holds {kind}, which a rule cannot use")

    def node_not(self, node, truthy):
        operand = self.expr(node.args[0])
        if operand.type not in (BOOLEAN, ANY, NULL):
            raise self.mismatch(operand, "a condition (for 'not')")
        operand = self.coerce(operand, BOOLEAN)
        if operand.known:
            return self.const(None if operand.value is None else not operand.value, BOOLEAN, node)
        return _Expr(BOOLEAN, node, f"(NOT {operand.sql})", operand.params)

    def node_and(self, node, truthy):
        return self.connective(node, truthy, "AND")

    def node_or(self, node, truthy):
        return self.connective(node, truthy, "OR")

    def connective(self, node, truthy, operator):
        parts, params = [], []
        for arg in node.args:
            operand = self.expr(arg, truthy)
            if operand.type not in (BOOLEAN, ANY, NULL):
                raise self.mismatch(operand, f"a condition (for '{operator.lower()}')")
            operand = self.condition(self.coerce(operand, BOOLEAN), truthy)
            parts.append(operand.sql)
            params.extend(operand.params)
        return _Expr(BOOLEAN, node, "(" + f" {operator} ".join(parts) + ")", params)

    def node_compare(self, node, truthy):
        operator = node.value
        left, right = self.expr(node.args[0]), self.expr(node.args[1])
        for side in (left, right):
            if side.type in (SET, LIST, TUPLE, DURATION):
                hint = ' (test a member with "x" in tags)' if side.type == SET else ""
                raise self.error(
                    side.node,
                    f"{self.shown(side.node)} is {_A[side.type]}: it cannot be "
                    f"compared with '{operator}'{hint}",
                )
        type_ = self.common_type([left, right], node)
        if type_ == BOOLEAN and operator not in ("==", "!="):
            raise self.error(node, f"conditions cannot be ordered with '{operator}'")
        if NULL in (left.type, right.type) or type_ == ANY:
            self.now_settled += left.now_uses + right.now_uses  # missing at every moment
            return self.const(None, BOOLEAN, node) if self.bindings else _Expr(BOOLEAN, node)
        left, right = self.coerce(left, type_), self.coerce(right, type_)
        self.changes_at(left, right)
        if truthy and operator == "==" and type_ in (STRING, BOOLEAN):
            for field_, other in ((left, right), (right, left)):
                if field_.attribute is not None and other.known and other.value is not None:
                    return self.contains_pair(field_.attribute, other.value, type_, node)
        left, right = self.same_repr([left, right])
        sql = f"({left.sql} {_COMPARE_SQL[operator]} {right.sql})"
        return _Expr(BOOLEAN, node, sql, [*left.params, *right.params])

    def changes_at(self, left: _Expr, right: _Expr) -> None:
        """For ``Clock``: the moment a comparison of ``now() + shift`` with a constant or an
        item's timestamp changes (where the two are equal)."""
        if left.now_shift is None and right.now_shift is None:
            return
        self.now_settled += left.now_uses + right.now_uses
        if left.now_shift is not None and right.now_shift is not None:
            return  # both move with the clock: the same verdict at every moment
        moving, other = (left, right) if left.now_shift is not None else (right, left)
        if other.known:
            if other.value is not None:
                try:
                    self.moments.append(other.value - moving.now_shift)
                except OverflowError:  # beyond the calendar: never comes
                    pass
        elif other.type == TIMESTAMP and not other.now_uses:
            sql = f"({other.sql} - %s::interval)"
            self.columns.append((sql, (*other.params, moving.now_shift)))
        else:
            self.now_settled -= left.now_uses + right.now_uses

    def node_in(self, node, truthy):
        negated = node.value
        item, container = self.expr(node.args[0]), self.expr(node.args[1])
        if item.type in (SET, LIST, TUPLE, DURATION):
            raise self.error(
                item.node,
                f"{self.shown(item.node)} is {_A[item.type]}: the left of 'in' must be one value",
            )
        if container.type == SET:
            result = self.set_member(self.coerce(item, STRING), container, node)
        elif container.type == TUPLE:
            result = self.one_of(item, list(container.items), node, truthy and not negated)
        elif container.type == LIST:
            result = self.in_list(item, container, node)
        elif container.type in (ANY, NULL):
            result = self.const(None, BOOLEAN, node) if self.bindings else _Expr(BOOLEAN, node)
        else:
            raise self.error(
                container.node,
                f"'in' needs a set, a list or a tuple on its right, but "
                f"{self.shown(container.node)} is {_A[container.type]} (for one value use '==')",
            )
        if negated and not (result.known and result.value is None):
            return _Expr(BOOLEAN, node, f"(NOT {result.sql})", result.params)
        return result

    def set_member(self, item: _Expr, members: _Expr, node: _Node) -> _Expr:
        """``item in <set field>``: JSON containment, which the GIN indexes answer; a set
        that is missing or no array is empty (so ``not in`` it is true)."""
        if item.known and item.value is None:
            return self.const(None, BOOLEAN, node)
        if item.known:
            element, params = "%s::text", [item.value]
        else:
            # NULL, not [null], for a missing item: no stored null may match it.
            element = f"NULLIF(jsonb_build_array({item.sql}), '[null]'::jsonb)"
            params = list(item.params)
        if members.column is not None:
            array = "jsonb_build_array(%s::text)" if item.known else element
            return _Expr(BOOLEAN, node, f"({self.table}.tags @> {array})", params)
        if item.known:
            array = "jsonb_build_array(%s::text)"
            sql = f"{self.table}.attributes @> jsonb_build_object(%s::text, {array})"
            return _Expr(BOOLEAN, node, f"({sql})", [members.attribute, *params])
        sql = f"COALESCE({self.table}.attributes -> %s::text, '[]'::jsonb) @> {element}"
        return _Expr(BOOLEAN, node, f"({sql})", [members.attribute, *params])

    def one_of(self, item: _Expr, members: list[_Expr], node: _Node, positive: bool) -> _Expr:
        """``item in (a, b, …)``."""
        for member in members:
            if member.type in (SET, LIST, TUPLE, DURATION):
                raise self.error(
                    member.node,
                    f"{self.shown(member.node)} is {_A[member.type]}, which cannot be in a tuple",
                )
        type_ = self.common_type([item, *members], node, "mix")
        if type_ == ANY or item.type == NULL:
            return self.const(None, BOOLEAN, node) if self.bindings else _Expr(BOOLEAN, node)
        item = self.coerce(item, type_)
        members = [self.coerce(member, type_) for member in members]
        if all(member.known for member in members):
            values = [member.value for member in members]
            if (
                positive
                and item.attribute is not None
                and type_ in (STRING, BOOLEAN)
                and values
                and len(values) <= _MAX_CONTAINMENT_ALTERNATIVES
                and None not in values
            ):
                tests = [self.contains_pair(item.attribute, v, type_, node) for v in values]
                params = [param for test in tests for param in test.params]
                return _Expr(BOOLEAN, node, "(" + " OR ".join(t.sql for t in tests) + ")", params)
            return self.any_of(item, values, type_, node)
        exprs = self.same_repr([item, *members])
        sql = f"({exprs[0].sql} IN (" + ", ".join(e.sql for e in exprs[1:]) + "))"
        return _Expr(BOOLEAN, node, sql, [param for e in exprs for param in e.params])

    def any_of(self, item: _Expr, values: list, type_: str, node: _Node) -> _Expr:
        """``item = ANY(<one array parameter>)``; in nothing: false, or NULL for a missing
        ``item`` (as for any other list, where SQL's ``= ANY('{}')`` would say false)."""
        if not values:
            if item.known:
                return self.const(None if item.value is None else False, BOOLEAN, node)
            return _Expr(BOOLEAN, node, f"NULLIF(({item.sql}) IS NULL, TRUE)", list(item.params))
        sql_type = "numeric" if type_ == NUMBER and item.numeric else _SQL_TYPES[type_]
        return _Expr(BOOLEAN, node, f"({item.sql} = ANY(%s::{sql_type}[]))", [*item.params, values])

    def in_list(self, item: _Expr, members: _Expr, node: _Node) -> _Expr:
        """``item in user.x``: the bound list as one array parameter."""
        if members.elem == ANY:
            type_ = item.type if item.type not in (ANY, NULL) else STRING
        else:
            constants = [self.const(value, members.elem, members.node) for value in members.value]
            type_ = self.common_type([item, *constants], node, "mix")
        if item.type == NULL:
            return self.const(None, BOOLEAN, node)
        item = self.coerce(item, type_)
        values = []
        for value in members.value:
            if value is not None and type_ == TIMESTAMP and isinstance(value, str):
                value = self.timestamp(value, members.node)
            values.append(value)
        return self.any_of(item, values, type_, node)

    def node_neg(self, node, truthy):
        operand = self.expr(node.args[0])
        if operand.type == DURATION:
            if operand.known:
                return self.const(None if operand.value is None else -operand.value, DURATION, node)
            return _Expr(DURATION, node, f"(-{operand.sql})", operand.params)
        operand = self.coerce(operand, NUMBER, allow_boolean=True)
        if operand.known:
            return self.const(None if operand.value is None else -operand.value, NUMBER, node)
        return _Expr(NUMBER, node, f"(-{operand.sql})", operand.params, numeric=operand.numeric)

    def node_arith(self, node, truthy):
        operator = node.value
        left, right = self.expr(node.args[0]), self.expr(node.args[1])
        types = {left.type, right.type}
        if types & {TIMESTAMP, DURATION}:
            return self.time_arith(left, right, operator, node)
        for side in (left, right):
            if side.type not in (NUMBER, BOOLEAN, ANY, NULL):
                raise self.mismatch(side, f"a number (for '{operator}')")
        left = self.coerce(left, NUMBER, allow_boolean=True)
        right = self.coerce(right, NUMBER, allow_boolean=True)
        if left.known and right.known:
            return self.const(self.fold(left.value, operator, right.value, node), NUMBER, node)
        left, right = self.as_numeric(left), self.as_numeric(right)
        if operator == "/":
            sql = f"({left.sql} / NULLIF({right.sql}, 0))"
        else:
            sql = f"({left.sql} {_ARITH_SQL[operator]} {right.sql})"
        return _Expr(NUMBER, node, sql, [*left.params, *right.params], numeric=True)

    def fold(self, left, operator, right, node):
        if left is None or right is None:
            return None
        if operator == "/":
            if right == 0:
                return None
            result = left / right
        else:
            result = {"+": left + right, "-": left - right, "*": left * right}[operator]
        if not math.isfinite(result):
            raise self.error(node, f"{self.shown(node)} is out of range")
        return result

    def time_arith(self, left: _Expr, right: _Expr, operator: str, node: _Node) -> _Expr:
        """timestamp ± duration, duration + timestamp, duration ± duration."""
        if left.type == DURATION and right.type == TIMESTAMP and operator == "+":
            left, right = right, left
        if right.type != DURATION or operator not in ("+", "-"):
            raise self.error(
                node,
                f"{self.shown(node)}: only a duration (days(n), hours(n), minutes(n)) can be "
                "added to or subtracted from a timestamp",
            )
        if left.type not in (TIMESTAMP, DURATION):
            left = self.coerce(left, TIMESTAMP)
        if left.known and right.known:
            if left.value is None or right.value is None:
                self.now_settled += left.now_uses  # missing at every moment
                return self.const(None, left.type, node)
            try:
                value = left.value + right.value if operator == "+" else left.value - right.value
            except OverflowError:
                raise self.error(node, f"{self.shown(node)} is out of range") from None
            result = self.const(value, left.type, node)
            if left.now_shift is not None:  # now() ± a constant duration
                shift = right.value if operator == "+" else -right.value
                result.now_shift, result.now_uses = left.now_shift + shift, left.now_uses
            return result
        sql = f"({left.sql} {_ARITH_SQL[operator]} {right.sql})"
        return _Expr(left.type, node, sql, [*left.params, *right.params])

    def node_call(self, node, truthy):
        name = node.value
        if name not in _FUNCTIONS:
            raise self.error(
                node, f"unknown function '{name}'; functions: " + ", ".join(_FUNCTIONS)
            )
        arity = {"now": (0, 0), "exists": (1, 1), "if": (3, 3), "min": (2, 32), "max": (2, 32)}
        low, high = arity.get(name, (1, 1))
        if not low <= len(node.args) <= high:
            wanted = f"{low}" if low == high else f"at least {low}"
            raise self.error(node, f"{name}() takes {wanted} argument{'s' * (low != 1)}")
        if name == "now":
            if self.bindings is None:
                return _Expr(TIMESTAMP, node, "%s::timestamptz", [None])
            self.now_calls += 1
            moment = self.const(self.bindings.now, TIMESTAMP, node)
            moment.now_shift, moment.now_uses = timedelta(0), 1
            return moment
        if name == "exists":
            return self.exists(node.args[0], node)
        if name == "if":
            return self.if_(node, truthy)
        if name in ("min", "max"):
            return self.extreme(node)
        return self.duration(node, _DURATION_SECONDS[name])

    def exists(self, arg: _Node, node: _Node) -> _Expr:
        """Whether the item has a value of the field's type (or the reference is bound)."""
        if arg.kind == "ref":
            value = _UNKNOWN
            if self.bindings is not None:
                scope, name = arg.value
                bound = self.bindings.params if scope == "param" else getattr(self.bindings, scope)
                value = bound.get(name)
            if value is _UNKNOWN:
                return _Expr(BOOLEAN, node)
            return self.const(value is not None, BOOLEAN, node)
        if arg.kind != "field":
            raise self.error(arg, "exists() takes a field or a reference, like exists(price)")
        e = self.expr(arg)
        if e.column is not None:
            if e.type == SET:
                sql = f"(jsonb_typeof({self.table}.tags) = 'array')"
            else:
                sql = f"({e.sql} IS NOT NULL)"
            return _Expr(BOOLEAN, node, sql)
        if e.type == SET:
            sql = f"(jsonb_typeof({self.table}.attributes -> %s::text) = 'array')"
            return _Expr(BOOLEAN, node, sql, [e.attribute])
        return _Expr(BOOLEAN, node, f"({e.sql} IS NOT NULL)", list(e.params))

    def if_(self, node: _Node, truthy: bool) -> _Expr:
        test = self.expr(node.args[0], truthy=True)
        if test.type not in (BOOLEAN, ANY, NULL):
            raise self.mismatch(test, "a condition (the first argument of if())")
        test = self.condition(self.coerce(test, BOOLEAN), truthy=True)
        branches = [self.expr(node.args[1], truthy), self.expr(node.args[2], truthy)]
        for branch in branches:
            if branch.type in (SET, LIST, TUPLE):
                raise self.mismatch(branch, "a value (for if())")
        type_ = self.common_type(branches, node, "mix", allow_boolean=True)
        if type_ == ANY:
            if self.bindings is None:
                return _Expr(ANY, node)
            return self.const(None, NULL, node)
        branches = self.same_repr([self.coerce(b, type_, allow_boolean=True) for b in branches])
        if type_ == BOOLEAN:
            branches = [self.condition(branch, truthy) for branch in branches]
        sql = f"(CASE WHEN {test.sql} THEN {branches[0].sql} ELSE {branches[1].sql} END)"
        params = [*test.params, *branches[0].params, *branches[1].params]
        return _Expr(type_, node, sql, params, numeric=any(b.numeric for b in branches))

    def extreme(self, node: _Node) -> _Expr:
        """min()/max() of numbers or timestamps; missing if an argument is (like
        arithmetic, unlike SQL's LEAST/GREATEST, which skip a NULL)."""
        args = [self.expr(arg) for arg in node.args]
        for arg in args:
            if arg.type not in (NUMBER, BOOLEAN, TIMESTAMP, STRING, ANY, NULL):
                raise self.mismatch(arg, f"a number or a timestamp (for {node.value}())")
        type_ = self.common_type(args, node, "mix", allow_boolean=True)
        if type_ in (STRING, BOOLEAN):
            culprit = next(arg for arg in args if arg.type == type_)
            raise self.mismatch(culprit, f"a number or a timestamp (for {node.value}())")
        if type_ == ANY:
            type_ = NUMBER
        args = self.same_repr([self.coerce(arg, type_, allow_boolean=True) for arg in args])
        numeric = any(arg.numeric for arg in args)
        function = _EXTREMES[node.value, "numeric" if numeric else _SQL_TYPES[type_]]
        sql, params = args[0].sql, list(args[0].params)
        for arg in args[1:]:
            sql = f"{function}({sql}, {arg.sql})"
            params.extend(arg.params)
        return _Expr(type_, node, sql, params, numeric=numeric)

    def duration(self, node: _Node, seconds: int) -> _Expr:
        """days(n), hours(n), minutes(n): an interval of whole seconds and microseconds."""
        amount = self.expr(node.args[0])
        if amount.type not in (NUMBER, ANY, NULL):
            raise self.mismatch(amount, f"a number (for {node.value}())")
        amount = self.coerce(amount, NUMBER)
        if amount.known:
            if amount.value is None:
                return self.const(None, DURATION, node)
            total = amount.value * seconds
            if not abs(total) <= MAX_DURATION_SECONDS:
                raise self.error(node, f"{self.shown(node)} is longer than 100 years")
            return self.const(timedelta(seconds=total), DURATION, node)
        # Clamped to ±100 years, computed in numeric: no value of an item overflows it.
        amount = self.as_numeric(amount)
        limit = f"{MAX_DURATION_SECONDS:.0f}"
        secs = f"round({_clamp(f'{amount.sql} * {seconds}', limit)}, 6)"
        return _Expr(DURATION, node, f"make_interval(secs => {secs}::float8)", amount.params)
