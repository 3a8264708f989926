"""Safe evaluation of small arithmetic expressions found in config values.

Config files are data that may come from someone else, so an expression in
them must never be able to reach the interpreter: no imports, no attribute
walks to ``__class__``/``__globals__``, no file access.  The security boundary
is a static whitelist over the parsed syntax tree, applied to the *entire*
tree before anything runs.  Evaluating with empty ``__builtins__`` and a
namespace holding only the whitelisted callables is a second line of defence,
not the first.

Typical use::

    expr = compile_expression("8 if t < .4 else 16", TIME_VARIABLES)
    size = expr(time_variables(epoch, epochs))
"""

from __future__ import annotations

import ast
import keyword
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from types import CodeType, SimpleNamespace

from clipig_gallery.core.textfiles import quoted

__all__ = [
    "SIM_VARIABLES",
    "TIME_VARIABLES",
    "Expression",
    "ExpressionError",
    "compile_expression",
    "time_variables",
]


class ExpressionError(ValueError):
    """A config expression was refused or failed to evaluate.

    ``text`` is the expression as written and ``reason`` says what is wrong;
    both always appear in the message so a user can find the bad value in a
    large config file.
    """

    def __init__(self, text: str, reason: str) -> None:
        super().__init__(text, reason)
        self.text = text
        self.reason = reason

    def __str__(self) -> str:
        return f"expression {quoted(self.text)}: {self.reason}"


# ---------------------------------------------------------------------------
# What an expression may refer to

# round(n, -k) on an integer works out 10**k, so a huge k never finishes;
# no config value needs more than a few hundred digits either way.
_MAX_ROUND_DIGITS = 400


def _round(number: object, ndigits: object = None) -> object:
    if isinstance(ndigits, int) and abs(ndigits) > _MAX_ROUND_DIGITS:
        raise ValueError(f"round() ndigits must be within +-{_MAX_ROUND_DIGITS}")
    return round(number, ndigits)  # type: ignore[call-overload]


_BUILTIN_FUNCTIONS = {
    "min": min,
    "max": max,
    "abs": abs,
    "int": int,
    "float": float,
    "round": _round,
}

# These math functions are cheap to call with huge integers by accident or on
# purpose (factorial(10**8) never returns); a config value has no use for them.
_MATH_EXCLUDED = frozenset({"factorial", "comb", "perm", "prod"})


def _public_math() -> tuple[dict[str, object], dict[str, float]]:
    functions: dict[str, object] = {}
    constants: dict[str, float] = {}
    for name in dir(math):
        if name.startswith("_") or name in _MATH_EXCLUDED:
            continue
        value = getattr(math, name)
        if isinstance(value, float):
            constants[name] = value
        elif callable(value):
            functions[name] = value
    return functions, constants


_MATH_FUNCTIONS, _MATH_CONSTANTS = _public_math()

# Everything callable by bare name.  min/max/... win over any math name that
# might clash in a future Python version.
_FUNCTIONS: dict[str, object] = {**_MATH_FUNCTIONS, **_BUILTIN_FUNCTIONS}

# Only the vetted names are reachable as ``math.x`` at run time, even though
# the static check already limits the attribute names; the real module would
# also offer ``math.__loader__`` and friends.
_MATH_NAMESPACE = SimpleNamespace(**_MATH_FUNCTIONS, **_MATH_CONSTANTS)

_BASE_NAMESPACE: dict[str, object] = {
    **_MATH_CONSTANTS,
    **_FUNCTIONS,
    "math": _MATH_NAMESPACE,
}

_BIN_OPS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow)
_UNARY_OPS = (ast.UAdd, ast.USub, ast.Not)
_BOOL_OPS = (ast.And, ast.Or)
_COMPARE_OPS = (ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE)

_OPERATOR_SYMBOLS = {
    ast.MatMult: "@",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.BitOr: "|",
    ast.BitXor: "^",
    ast.BitAnd: "&",
    ast.Invert: "~",
    ast.Is: "is",
    ast.IsNot: "is not",
    ast.In: "in",
    ast.NotIn: "not in",
}

# Friendlier wording for constructs people are likely to try.
_NODE_DESCRIPTIONS = {
    ast.Lambda: "lambda",
    ast.ListComp: "comprehensions",
    ast.SetComp: "comprehensions",
    ast.DictComp: "comprehensions",
    ast.GeneratorExp: "generator expressions",
    ast.NamedExpr: "assignment expressions (:=)",
    ast.JoinedStr: "f-strings",
    ast.FormattedValue: "f-strings",
    ast.Starred: "starred expressions (*)",
    ast.Set: "set literals",
    ast.Slice: "slices",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
}

# Longest result, in bits, that ``int ** int`` may produce.  Far beyond any
# sensible config value, but small enough that ``9**9**9`` is refused at once
# instead of hanging the renderer.
_MAX_POW_BITS = 4096
# Longest sequence that ``(x,) * n`` may produce, for the same reason.
_MAX_REPEAT = 10_000


def _guarded_pow(base: object, exponent: object) -> object:
    if (
        isinstance(base, int)
        and isinstance(exponent, int)
        and exponent > 0
        and abs(base) > 1
        and exponent * (abs(base).bit_length() - 1) > _MAX_POW_BITS
    ):
        raise OverflowError("integer power result would be too large")
    return base**exponent  # type: ignore[operator]


def _guarded_mul(left: object, right: object) -> object:
    for seq, count in ((left, right), (right, left)):
        if (
            isinstance(seq, (list, tuple))
            and isinstance(count, int)
            and len(seq) * count > _MAX_REPEAT
        ):
            raise OverflowError("repeated sequence would be too long")
    return left * right  # type: ignore[operator]


# Names the compiled code refers to after rewriting; they start with an
# underscore, which neither the whitelist nor variable names allow, so an
# expression can never name them itself.
_GLOBALS_TEMPLATE: dict[str, object] = {
    "__builtins__": {},
    "_guarded_pow": _guarded_pow,
    "_guarded_mul": _guarded_mul,
}


def _vector_helpers() -> None:
    # Filled in once the helpers below are defined.
    _GLOBALS_TEMPLATE.update(_where=_where, _all=_all, _any=_any, _not=_not, _vcall=_vcall)


# ---------------------------------------------------------------------------
# Static check


class _Refused(Exception):
    """Internal: carries the reason up to ``compile_expression``."""


class _Checker:
    def __init__(self, variables: frozenset[str]) -> None:
        self.variables = variables
        self.used: set[str] = set()

    def check(self, node: ast.AST) -> None:
        # Each branch visits exactly the children it expects; there is no
        # generic fallback, so an unknown node type can never slip through.
        if isinstance(node, ast.Expression):
            self.check(node.body)
        elif isinstance(node, ast.Constant):
            self._constant(node.value)
        elif isinstance(node, ast.Name):
            self._name(node)
        elif isinstance(node, (ast.Tuple, ast.List)):
            for item in node.elts:
                self.check(item)
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if key is None:
                    raise _Refused("dict unpacking (**) is not allowed")
                self.check(key)
                self.check(value)
        elif isinstance(node, ast.BinOp):
            self._operator(node.op, _BIN_OPS)
            self.check(node.left)
            self.check(node.right)
        elif isinstance(node, ast.UnaryOp):
            self._operator(node.op, _UNARY_OPS)
            self.check(node.operand)
        elif isinstance(node, ast.BoolOp):
            self._operator(node.op, _BOOL_OPS)
            for value in node.values:
                self.check(value)
        elif isinstance(node, ast.Compare):
            for op in node.ops:
                self._operator(op, _COMPARE_OPS)
            self.check(node.left)
            for comparator in node.comparators:
                self.check(comparator)
        elif isinstance(node, ast.IfExp):
            self.check(node.test)
            self.check(node.body)
            self.check(node.orelse)
        elif isinstance(node, ast.Call):
            self._call(node)
        elif isinstance(node, ast.Attribute):
            self._math_attribute(node, called=False)
        elif isinstance(node, ast.Subscript):
            if not isinstance(node.value, (ast.Tuple, ast.List, ast.Dict)):
                raise _Refused("indexing is only allowed on a literal tuple, list or dict")
            self.check(node.value)
            self.check(node.slice)
        else:
            what = _NODE_DESCRIPTIONS.get(type(node), type(node).__name__)
            raise _Refused(f"{what} is not allowed")

    @staticmethod
    def _constant(value: object) -> None:
        if value is None or isinstance(value, (bool, int, float)):
            return
        if isinstance(value, str):
            raise _Refused("string constants are not allowed")
        if isinstance(value, bytes):
            raise _Refused("bytes constants are not allowed")
        raise _Refused(f"constant {value!r} is not allowed")

    @staticmethod
    def _operator(op: ast.AST, allowed: tuple[type, ...]) -> None:
        if not isinstance(op, allowed):
            symbol = _OPERATOR_SYMBOLS.get(type(op), type(op).__name__)
            raise _Refused(f"operator '{symbol}' is not allowed")

    def _name(self, node: ast.Name) -> None:
        name = node.id
        if name in self.variables:
            self.used.add(name)
        elif name in _MATH_CONSTANTS:
            pass
        elif name in _FUNCTIONS:
            # A function value on its own is useless in a config and would
            # leak a callable into whatever consumes the result.
            raise _Refused(f"function '{name}' must be called")
        elif name == "math":
            raise _Refused("'math' can only be used as math.<name>")
        else:
            known = ", ".join(sorted(self.variables)) or "none"
            raise _Refused(f"name '{name}' is not allowed (variables: {known})")

    def _math_attribute(self, node: ast.Attribute, *, called: bool) -> None:
        value = node.value
        if isinstance(value, ast.Name) and value.id == "math" and "math" not in self.variables:
            attr = node.attr
            if attr in _MATH_FUNCTIONS:
                if not called:
                    raise _Refused(f"function 'math.{attr}' must be called")
                return
            if attr in _MATH_CONSTANTS:
                return
            raise _Refused(f"'math.{attr}' is not allowed")
        raise _Refused(f"attribute access '.{node.attr}' is not allowed")

    def _call(self, node: ast.Call) -> None:
        if node.keywords:
            raise _Refused("keyword arguments are not allowed")
        func = node.func
        if isinstance(func, ast.Name):
            if func.id in self.variables:
                raise _Refused(f"calls to variable '{func.id}' are not allowed")
            if func.id in _TIME_FUNCTIONS:
                if "t" not in self.variables:
                    raise _Refused(f"'{func.id}' needs the training time, which this value "
                                   "does not have")
                if len(node.args) != 2:
                    raise _Refused(f"'{func.id}' takes two numbers: time_step(start, end)")
                self.used.add("t")
            elif func.id not in _FUNCTIONS:
                raise _Refused(f"calls to '{func.id}' are not allowed")
        elif isinstance(func, ast.Attribute):
            if isinstance(func.value, ast.Dict) and func.attr == "get":
                # A lookup table written inline, e.g. {0: 8, 1: 16}.get(i, 32).
                self.check(func.value)
            else:
                self._math_attribute(func, called=True)
        else:
            raise _Refused("only named functions may be called")
        for arg in node.args:
            self.check(arg)


class _GuardOperators(ast.NodeTransformer):
    """Route ``**`` and ``*`` through size-checking helpers.

    Runs only on trees that already passed the whitelist.
    """

    _HELPERS = {ast.Pow: "_guarded_pow", ast.Mult: "_guarded_mul"}

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        self.generic_visit(node)
        helper = self._HELPERS.get(type(node.op))
        if helper is None:
            return node
        call = ast.Call(
            func=ast.Name(id=helper, ctx=ast.Load()),
            args=[node.left, node.right],
            keywords=[],
        )
        return ast.copy_location(call, node)


# ---------------------------------------------------------------------------
# Public API


@dataclass(frozen=True)
class Expression:
    """A checked, compiled expression; call it with the variable values."""

    text: str
    names: frozenset[str]
    code: CodeType = field(repr=False, compare=False, hash=False)
    # For expressions that read the similarity: the same code with conditions,
    # comparisons and functions written so they also work element by element
    # on a tensor of similarities (one per view), without reading it back.
    vector_code: CodeType | None = field(default=None, repr=False, compare=False, hash=False)

    @property
    def is_constant(self) -> bool:
        return not self.names

    def __reduce__(self):
        # Code objects do not pickle: a cluster worker checks and compiles the
        # text again, with the variables it was found to use.
        return (_recompile, (self.text, tuple(sorted(self.names))))

    def __call__(self, env: Mapping[str, object] | None = None) -> object:
        env = {} if env is None else env
        missing = sorted(self.names.difference(env))
        if missing:
            raise ExpressionError(self.text, f"no value given for variable(s) {', '.join(missing)}")
        values = {name: env[name] for name in self.names}
        namespace = {**_BASE_NAMESPACE, **values}
        if "t" in values:
            namespace["time_step"] = _time_step_at(values["t"])
        code = self.code
        if self.vector_code is not None and any(
                not isinstance(v, (int, float)) for v in values.values()):
            code = self.vector_code
        try:
            return eval(code, dict(_GLOBALS_TEMPLATE), namespace)  # noqa: S307
        except (
            ArithmeticError,
            LookupError,
            TypeError,
            ValueError,
            MemoryError,
            RecursionError,
            RuntimeError,  # from torch, on a tensor of similarities
        ) as exc:
            raise ExpressionError(
                self.text, f"evaluation failed{_describe(values)}: {_brief(exc)}"
            ) from exc


def _assignments(values: Mapping[str, object]) -> str:
    return ", ".join(f"{k}={values[k]!r}" for k in sorted(values))


def _describe(values: Mapping[str, object]) -> str:
    return f" with {_assignments(values)}" if values else ""


def _brief(exc: BaseException) -> str:
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _validate_variables(variables: Collection[str]) -> frozenset[str]:
    # A bare string would silently become a set of one-letter names.
    if isinstance(variables, str):
        raise TypeError("variables must be a collection of names, not a string")
    for name in variables:
        # Underscore names are reserved for the evaluator's own helpers.
        if (
            not isinstance(name, str)
            or not name.isidentifier()
            or keyword.iskeyword(name)
            or name.startswith("_")
        ):
            raise ValueError(f"invalid expression variable name {name!r}")
    return frozenset(variables)


def _recompile(text: str, names: tuple[str, ...]) -> Expression:
    return compile_expression(text, names, trial=False)


def compile_expression(text: str, variables: Collection[str], *, trial: bool = True) -> Expression:
    """Check and compile ``text``; raise ExpressionError if it is not allowed.

    With ``trial`` (the default) the expression is also evaluated once with
    every variable at 0, so that a value which cannot work at the first
    epoch is reported when the config is loaded rather than mid-run.
    """
    if not isinstance(text, str):
        raise TypeError(f"expression must be a string, not {type(text).__name__}")
    allowed = _validate_variables(variables)
    source = text.strip()
    if not source:
        raise ExpressionError(text, "expression is empty")
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(text, f"syntax error: {exc.msg}") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise ExpressionError(text, f"cannot be parsed: {_brief(exc)}") from None

    checker = _Checker(allowed)
    try:
        checker.check(tree)
    except _Refused as exc:
        raise ExpressionError(text, str(exc)) from None
    except RecursionError:
        raise ExpressionError(text, "expression is nested too deeply") from None

    try:
        guarded = ast.fix_missing_locations(_GuardOperators().visit(tree))
        code = compile(guarded, "<expression>", "eval")
    except (RecursionError, MemoryError, ValueError, SyntaxError) as exc:
        raise ExpressionError(text, f"cannot be compiled: {_brief(exc)}") from None

    vector_code = None
    if checker.used & set(SIM_VARIABLES):
        try:
            vector = ast.fix_missing_locations(_Vectorize().visit(guarded))
            vector_code = compile(vector, "<expression>", "eval")
        except (RecursionError, MemoryError, ValueError, SyntaxError) as exc:
            raise ExpressionError(text, f"cannot be compiled: {_brief(exc)}") from None
    expression = Expression(text=text, names=frozenset(checker.used), code=code,
                            vector_code=vector_code)
    if trial:
        zeros = {name: 0 for name in expression.names}
        try:
            expression(zeros)
        except ExpressionError as exc:
            cause = exc.__cause__ if exc.__cause__ is not None else exc
            raise ExpressionError(
                text,
                # The trial is part of the contract: a value must work on
                # the first epoch, where every time variable is 0.
                f"fails{' at ' + _assignments(zeros) if zeros else ''}: {_brief(cause)}",
            ) from cause
    return expression


TIME_VARIABLES = (
    "epoch", "t", "t2", "t3", "t4", "t5", "ti", "ti2", "ti3", "ti4", "ti5",
    # CLIPig's long names for the same values
    "time", "time2", "time3", "time4", "time5",
    "time_inverse", "time_inverse2", "time_inverse3", "time_inverse4", "time_inverse5",
)
# The running similarity (100 x cosine, per view), in weights only.
SIM_VARIABLES = ("similarity", "sim")


def time_variables(epoch: int, epochs: int) -> dict[str, float]:
    """Values of TIME_VARIABLES for ``epoch`` (0-based) of ``epochs``.

    ``t`` runs from 0 on the first epoch to exactly 1 on the last one, so an
    expression like ``8 if t < 1 else 16`` reliably fires on the final epoch;
    a single-epoch run stays at t=0 instead of dividing by zero.
    """
    t = epoch / max(1, epochs - 1)
    ti = 1 - t
    values: dict[str, float] = {"epoch": epoch, "t": t}
    for power in range(2, 6):
        values[f"t{power}"] = t**power
    values["ti"] = ti
    for power in range(2, 6):
        values[f"ti{power}"] = ti**power
    for short, long in (("t", "time"), ("ti", "time_inverse")):
        values[long] = values[short]
        for power in range(2, 6):
            values[f"{long}{power}"] = values[f"{short}{power}"]
    return values


# ---------------------------------------------------------------------------
# time_step(a, b): a ramp over the training time


def time_step(t: float, start: float, end: float) -> float:
    """0 before ``start``, 1 after ``end``, linear in between; a falling ramp when
    ``end`` < ``start`` (time_step(0.5, 0) falls from 1 to 0 over the first half).
    With start == end, a step: 1 from that moment on."""
    for value in (start, end):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"time_step takes numbers, got {value!r}")
    if start == end:
        return 1.0 if t >= start else 0.0
    return min(1.0, max(0.0, (t - start) / (end - start)))


def _time_step_at(t: float):
    def bound(start, end):
        return time_step(t, start, end)

    return bound


_TIME_FUNCTIONS = frozenset({"time_step"})


# ---------------------------------------------------------------------------
# Element-wise evaluation, for a tensor of similarities


class _Vectorize(ast.NodeTransformer):
    """Rewrite a checked tree so it also evaluates on tensors: ``a if c else b`` as
    a where, ``and``/``or``/``not`` and chained comparisons as element-wise logic,
    function calls through ``_vcall``. Runs only on trees that passed the whitelist."""

    @staticmethod
    def _call(helper: str, args: list[ast.expr], node: ast.AST) -> ast.AST:
        call = ast.Call(func=ast.Name(id=helper, ctx=ast.Load()), args=args, keywords=[])
        return ast.copy_location(call, node)

    def visit_IfExp(self, node: ast.IfExp) -> ast.AST:
        self.generic_visit(node)
        return self._call("_where", [node.test, node.body, node.orelse], node)

    def visit_BoolOp(self, node: ast.BoolOp) -> ast.AST:
        self.generic_visit(node)
        helper = "_all" if isinstance(node.op, ast.And) else "_any"
        return self._call(helper, list(node.values), node)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.op, ast.Not):
            return self._call("_not", [node.operand], node)
        return node

    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        self.generic_visit(node)
        if len(node.ops) == 1:
            return node
        pairs, left = [], node.left
        for op, right in zip(node.ops, node.comparators, strict=True):
            pairs.append(ast.copy_location(
                ast.Compare(left=left, ops=[op], comparators=[right]), node))
            left = right
        return self._call("_all", pairs, node)

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        func = node.func
        if isinstance(func, ast.Name) and (func.id in _FUNCTIONS or func.id in _TIME_FUNCTIONS):
            name = func.id
        elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) \
                and func.value.id == "math":
            name = func.attr
        else:
            return node  # {..}.get(k, d) and the guards
        if name in _TIME_FUNCTIONS:
            return node
        return self._call("_vcall", [ast.Constant(name), *node.args], node)


def _is_tensor(value: object) -> bool:
    return type(value).__module__.startswith("torch")


def _where(condition, yes, no):
    if _is_tensor(condition):
        import torch

        return torch.where(condition, yes, no)
    return yes if condition else no


def _all(*values):
    result = values[0]
    for value in values[1:]:
        result = (result & value) if _is_tensor(result) or _is_tensor(value) else (result and value)
    return result


def _any(*values):
    result = values[0]
    for value in values[1:]:
        result = (result | value) if _is_tensor(result) or _is_tensor(value) else (result or value)
    return result


def _not(value):
    return ~value.bool() if _is_tensor(value) else not value


def _fold(pick, clamp_key):
    def fold(*values):
        import torch

        result = values[0]
        for value in values[1:]:
            if _is_tensor(result) and _is_tensor(value):
                result = pick(result, value)
            elif _is_tensor(result):
                result = torch.clamp(result, **{clamp_key: value})
            elif _is_tensor(value):
                result = torch.clamp(value, **{clamp_key: result})
            else:
                result = (min if clamp_key == "max" else max)(result, value)
        return result

    return fold


def _tensor_functions() -> dict[str, object]:
    import torch

    def log(x, base=None):
        return torch.log(x) if base is None else torch.log(x) / math.log(base)

    def round_(x, ndigits=None):
        return torch.round(x) if ndigits is None else torch.round(x, decimals=int(ndigits))

    table = {
        "abs": torch.abs, "fabs": torch.abs, "min": _fold(torch.minimum, "max"),
        "max": _fold(torch.maximum, "min"), "int": torch.trunc, "trunc": torch.trunc,
        "float": lambda x: x, "round": round_, "floor": torch.floor, "ceil": torch.ceil,
        "sqrt": torch.sqrt, "exp": torch.exp, "expm1": torch.expm1, "log": log,
        "log2": torch.log2, "log10": torch.log10, "log1p": torch.log1p, "pow": torch.pow,
        "degrees": torch.rad2deg, "radians": torch.deg2rad, "hypot": torch.hypot,
        "atan2": torch.atan2, "copysign": torch.copysign, "fmod": torch.fmod,
    }
    for name in ("sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh",
                 "asinh", "acosh", "atanh", "erf", "erfc"):
        table[name] = getattr(torch, name)
    return table


_TENSOR_FUNCTIONS: dict[str, object] = {}


def _vcall(name: str, *args):
    if not any(_is_tensor(a) for a in args):
        return _FUNCTIONS.get(name, getattr(_MATH_NAMESPACE, name, None))(*args)
    if not _TENSOR_FUNCTIONS:
        _TENSOR_FUNCTIONS.update(_tensor_functions())
    function = _TENSOR_FUNCTIONS.get(name)
    if function is None:
        raise TypeError(f"{name}() cannot take the similarity (a value per view)")
    import torch

    # Scalars beside a tensor become tensors of its kind (torch functions of two
    # arguments want tensors); Python numbers need no device copy elsewhere.
    like = next(a for a in args if _is_tensor(a))
    args = tuple(a if _is_tensor(a) or name in ("min", "max", "round", "log")
                 else torch.as_tensor(a, dtype=like.dtype, device=like.device) for a in args)
    return function(*args)



_vector_helpers()
