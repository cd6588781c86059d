"""GitHub Actions `${{ }}` expressions, evaluated the way the runner does, for tests/gha.py.

Reads an expression and the contexts it may name (inputs, github, runner, matrix, needs, steps,
env); returns its value. Operators (! && || == != < <= > >=, property and index access, the
`*` filter) and the functions kpipe's workflows use; anything else is an ExprError, so a
workflow cannot use what the runner stand-in does not know. Written here because no PyPI
package evaluates Actions expressions.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

_TOKEN = re.compile(r"\s*(?:(?P<num>-?\d+(?:\.\d+)?)|(?P<str>'(?:[^']|'')*')|"
                    r"(?P<op>==|!=|<=|>=|&&|\|\||[!<>()\[\].,*])|(?P<name>[A-Za-z_][\w-]*))")


class ExprError(Exception):
    pass


def _tokens(text: str) -> list[tuple[str, object]]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ExprError(f"cannot read expression at {text[pos:]!r}")
        pos = m.end()
        kind = m.lastgroup
        value = m.group(kind)
        if kind == "num":
            value = float(value) if "." in value else int(value)
        elif kind == "str":
            value = value[1:-1].replace("''", "'")
        out.append((kind, value))
    return out


def truthy(value: object) -> bool:
    return value not in (None, False, 0, "") and value == value


def to_str(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def _equal(a: object, b: object) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a.lower() == b.lower()
    if type(a) is not type(b) and not (isinstance(a, int | float) and isinstance(b, int | float)):
        try:
            return float(to_str(a) or 0) == float(to_str(b) or 0)
        except ValueError:
            return False
    return a == b


class Evaluator:
    """Evaluates one expression against the contexts; `status` answers success()/failure()."""

    def __init__(self, contexts: dict, status: str = "success",
                 workspace: Path | None = None) -> None:
        self.contexts, self.status, self.workspace = contexts, status, workspace

    def eval(self, text: str) -> object:
        self.toks, self.pos = _tokens(text), 0
        value = self._or()
        if self.pos != len(self.toks):
            raise ExprError(f"unexpected {self.toks[self.pos][1]!r} in {text!r}")
        return value

    def _peek(self) -> tuple[str, object] | None:
        return self.toks[self.pos] if self.pos < len(self.toks) else None

    def _take(self, op: str | None = None) -> tuple[str, object]:
        tok = self._peek()
        if tok is None or (op is not None and tok[1] != op):
            raise ExprError(f"expected {op or 'more'} in expression")
        self.pos += 1
        return tok

    def _or(self) -> object:
        value = self._and()
        while self._peek() == ("op", "||"):
            self._take()
            right = self._and()
            value = value if truthy(value) else right
        return value

    def _and(self) -> object:
        value = self._cmp()
        while self._peek() == ("op", "&&"):
            self._take()
            right = self._cmp()
            value = right if truthy(value) else value
        return value

    def _cmp(self) -> object:
        left = self._unary()
        tok = self._peek()
        if tok and tok[0] == "op" and tok[1] in ("==", "!=", "<", "<=", ">", ">="):
            self._take()
            right = self._unary()
            if tok[1] in ("==", "!="):
                return _equal(left, right) == (tok[1] == "==")
            a, b = float(to_str(left) or 0), float(to_str(right) or 0)
            return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[tok[1]]
        return left

    def _unary(self) -> object:
        if self._peek() == ("op", "!"):
            self._take()
            return not truthy(self._unary())
        return self._primary()

    def _primary(self) -> object:
        kind, value = self._take()
        if kind in ("num", "str"):
            return value
        if (kind, value) == ("op", "("):
            inner = self._or()
            self._take(")")
            return inner
        if kind != "name":
            raise ExprError(f"unexpected {value!r}")
        if value in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[value]
        if self._peek() == ("op", "("):
            self._take()
            args = []
            while self._peek() != ("op", ")"):
                args.append(self._or())
                if self._peek() == ("op", ","):
                    self._take()
            self._take(")")
            return self._call(value, args)
        if value not in self.contexts:
            raise ExprError(f"unknown context {value!r}")
        obj = self.contexts[value]
        while self._peek() in (("op", "."), ("op", "[")):
            if self._take()[1] == ".":
                key = self._take()[1]
            else:
                key = self._or()
                self._take("]")
            obj = obj.get(key) if isinstance(obj, dict) else None
        return obj

    def _call(self, name: str, args: list) -> object:
        simple = {
            "contains": lambda a, b: (to_str(b).lower() in to_str(a).lower()
                                      if not isinstance(a, list) else
                                      any(_equal(x, b) for x in a)),
            "startsWith": lambda a, b: to_str(a).lower().startswith(to_str(b).lower()),
            "endsWith": lambda a, b: to_str(a).lower().endswith(to_str(b).lower()),
            "fromJSON": lambda a: json.loads(a),
            "toJSON": lambda a: json.dumps(a),
            "format": lambda f, *a: re.sub(r"\{(\d+)\}", lambda m: to_str(a[int(m[1])]), f),
            "always": lambda: True,
            "success": lambda: self.status == "success",
            "failure": lambda: self.status == "failure",
            "cancelled": lambda: False,
            "hashFiles": self._hash_files,
        }
        if name not in simple:
            raise ExprError(f"function {name}() is not known to this stand-in")
        return simple[name](*args)

    def _hash_files(self, *patterns: str) -> str:
        assert self.workspace is not None
        digest = hashlib.sha256()
        for pattern in patterns:
            for path in sorted(self.workspace.glob(pattern)):
                if path.is_file():
                    digest.update(hashlib.sha256(path.read_bytes()).digest())
        return digest.hexdigest()


_EXPR = re.compile(r"\$\{\{(.*?)\}\}", re.S)


def interpolate(value: object, ev: Evaluator) -> object:
    """A workflow value with its ${{ }} parts evaluated (a lone expression keeps its type)."""
    if isinstance(value, dict):
        return {k: interpolate(v, ev) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, ev) for v in value]
    if not isinstance(value, str):
        return value
    whole = _EXPR.fullmatch(value.strip())
    if whole:
        return ev.eval(whole.group(1))
    return _EXPR.sub(lambda m: to_str(ev.eval(m.group(1))), value)


def condition(text: object, ev: Evaluator) -> bool:
    """A step's or job's `if:`; without a status function it means `success() && (...)`."""
    if text is None:
        return ev.status == "success"
    expr = str(text).strip()
    if m := _EXPR.fullmatch(expr):
        expr = m.group(1)
    if not re.search(r"\b(always|success|failure|cancelled)\(", expr):
        expr = f"success() && ({expr})"
    return truthy(ev.eval(expr))
