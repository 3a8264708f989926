"""Tests for renderer.language.expr: the safe evaluator for config expressions."""

from __future__ import annotations

import math
import pickle

import pytest

from clipig_gallery.renderer.language.expr import (
    TIME_VARIABLES,
    Expression,
    ExpressionError,
    compile_expression,
    time_variables,
)


def evaluate_constant(text: str) -> object:
    """An expression without variables, compiled and run as the config parser does."""
    return compile_expression(text, (), trial=False)()


def run(text: str, **env: float) -> object:
    return compile_expression(text, TIME_VARIABLES)(time_variables(0, 2) | env)


def refused(text: str, variables=TIME_VARIABLES) -> ExpressionError:
    with pytest.raises(ExpressionError) as info:
        compile_expression(text, variables)
    # Every refusal must point the user at the offending config value: the
    # whole of it, or for a huge one its first 200 characters and its length.
    shown = repr(text) if len(text) <= 200 else f"{text[:200]!r}... ({len(text)} characters)"
    assert f"expression {shown}: " in str(info.value)
    assert info.value.text == text
    return info.value


# --- evaluation -------------------------------------------------------------


def test_arithmetic() -> None:
    assert evaluate_constant("1 + 2 * 3") == 7
    assert evaluate_constant("7 // 2") == 3
    assert evaluate_constant("7 % 4") == 3
    assert evaluate_constant("2 ** 10") == 1024
    assert evaluate_constant("-(3 - 5)") == 2
    assert evaluate_constant("+1.5") == 1.5
    assert evaluate_constant("1 / 4") == 0.25
    assert evaluate_constant("not 0") is True
    assert evaluate_constant("0 or 3") == 3
    assert evaluate_constant("1 and None") is None
    assert evaluate_constant("1 < 2 <= 2 != 3 == 3 > 0 >= 0") is True
    assert evaluate_constant("(1, 2.5, [True, None])") == (1, 2.5, [True, None])
    assert evaluate_constant("{1: 2, 3: (4, 5)}") == {1: 2, 3: (4, 5)}


def test_surrounding_whitespace_is_ignored() -> None:
    expr = compile_expression("  t * 2\n", ["t"])
    assert expr({"t": 3}) == 6
    assert expr.text == "  t * 2\n"


def test_ti_scaling() -> None:
    assert compile_expression("1/5*ti", TIME_VARIABLES)({"ti": 0.5}) == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("t", "expected"),
    [
        (0.0, 8),
        (1 / 16, 8),
        (2 / 16, 16),
        (3 / 16, 32),
        (4 / 16, 64),
        (5 / 16, 128),
        (6 / 16, 224),
        (1.0, 224),
    ],
)
def test_lookup_table_resolution(t: float, expected: int) -> None:
    expr = compile_expression(
        "{0: 8, 1: 8, 2: 16, 3: 32, 4: 64, 5: 128}.get(int(t*16), 224)",
        TIME_VARIABLES,
    )
    assert expr({"t": t}) == expected


def test_conditional() -> None:
    expr = compile_expression("8 if t < .4 else 16", TIME_VARIABLES)
    assert expr({"t": 0.39}) == 8
    assert expr({"t": 0.4}) == 16


def test_min_max_clamp() -> None:
    expr = compile_expression("max(8, min(224, int(t*448/8)*8))", TIME_VARIABLES)
    assert expr({"t": 0.0}) == 8
    assert expr({"t": 0.25}) == 112
    assert expr({"t": 1.0}) == 224


def test_builtin_helpers() -> None:
    assert evaluate_constant("abs(-2)") == 2
    assert evaluate_constant("int(2.7)") == 2
    assert evaluate_constant("float(3)") == 3.0
    assert evaluate_constant("round(2.567, 2)") == 2.57


def test_math_functions_bare_and_qualified() -> None:
    assert run("math.sin(t)", t=0.5) == pytest.approx(math.sin(0.5))
    assert run("sin(t)", t=0.5) == pytest.approx(math.sin(0.5))
    assert evaluate_constant("math.pi") == math.pi
    assert evaluate_constant("2 * pi") == pytest.approx(math.tau)
    assert evaluate_constant("sqrt(16) + floor(2.5) + math.log(e)") == 7
    assert evaluate_constant("exp(0)") == 1


def test_subscript_of_literals() -> None:
    expr = compile_expression("(8, 16)[int(t*2)]", TIME_VARIABLES)
    assert expr({"t": 0.0}) == 8
    assert expr({"t": 0.5}) == 16
    assert evaluate_constant("[1, 2, 3][-1]") == 3
    assert evaluate_constant("{0: 5}[0]") == 5


def test_names_lists_only_variables() -> None:
    expr = compile_expression("max(t, ti2) * math.sin(epoch) + pi", TIME_VARIABLES)
    assert expr.names == frozenset({"t", "ti2", "epoch"})
    assert not expr.is_constant
    constant = compile_expression("min(1, 2)", TIME_VARIABLES)
    assert constant.names == frozenset()
    assert constant.is_constant


def test_expression_value_semantics() -> None:
    a = compile_expression("t + 1", ["t"])
    b = compile_expression("t + 1", ["t", "ti"])
    assert a == b
    assert hash(a) == hash(b)
    assert "code" not in repr(a)
    with pytest.raises(AttributeError):
        a.text = "0"  # type: ignore[misc]
    assert isinstance(a, Expression)


def test_extra_env_entries_are_ignored_and_missing_ones_reported() -> None:
    expr = compile_expression("t * 2", TIME_VARIABLES)
    assert expr(time_variables(1, 3)) == 1.0
    with pytest.raises(ExpressionError, match="no value given for variable.*t"):
        expr({"ti": 1})


def test_variable_shadows_math_constant() -> None:
    expr = compile_expression("e * 2", ["e"])
    assert expr.names == frozenset({"e"})
    assert expr({"e": 1}) == 2


# --- refusals ---------------------------------------------------------------


def test_import_system_is_refused_and_not_run(tmp_path) -> None:
    marker = tmp_path / "ran"
    err = refused(f"__import__('os').system('touch {marker}')")
    assert "not allowed" in str(err)
    refused(f"open('{marker}', 'w')")
    refused(f"(1, open('{marker}', 'w'))[0]")
    assert not marker.exists()


def test_refusal_happens_before_any_evaluation() -> None:
    # The whole tree is checked first, so the unknown name wins over the
    # division by zero that would otherwise be hit first.
    err = refused("1/0 + foo")
    assert "name 'foo' is not allowed" in str(err)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("__import__('os').system('echo hi')", "attribute access '.system'"),
        ("__import__('os')", "calls to '__import__' are not allowed"),
        ("().__class__.__bases__", "attribute access '.__bases__'"),
        ("t.real", "attribute access '.real'"),
        ("t.get(1)", "attribute access '.get'"),
        ("[x for x in (1, 2)]", "comprehensions"),
        ("{x: 1 for x in (1, 2)}", "comprehensions"),
        ("max(x for x in (1, 2))", "generator expressions"),
        ("lambda: 1", "lambda"),
        ("(lambda: 1)()", "only named functions"),
        ("foo", "name 'foo' is not allowed"),
        ("round(t, ndigits=2)", "keyword arguments"),
        ("'a'*10", "string constants"),
        ("b'a'", "bytes constants"),
        ("1j", "constant 1j"),
        ("...", "constant Ellipsis"),
        ("math.__dict__", "'math.__dict__' is not allowed"),
        ("math.factorial(10)", "'math.factorial' is not allowed"),
        ("math", "'math' can only be used"),
        ("sin", "function 'sin' must be called"),
        ("math.sin", "function 'math.sin' must be called"),
        ("{0:1}.items()", "attribute access '.items'"),
        ("{0:1}.get", "attribute access '.get'"),
        ("getattr(t, 'x')", "calls to 'getattr'"),
        ("t(1)", "calls to variable 't'"),
        ("(y := 1)", "assignment expressions"),
        ("f'{t}'", "f-strings"),
        ("min(*(1, 2))", "starred"),
        ("{1, 2}", "set literals"),
        ("{**{0: 1}}", "dict unpacking"),
        ("(1, 2)[0:1]", "slices"),
        ("t[0]", "indexing is only allowed"),
        ("1 << 3", "operator '<<'"),
        ("1 @ 3", "operator '@'"),
        ("~1", "operator '~'"),
        ("t is None", "operator 'is'"),
        ("1 in (1, 2)", "operator 'in'"),
        ("1 +", "syntax error"),
        ("x = 1", "syntax error"),
        ("", "empty"),
    ],
)
def test_refused(text: str, reason: str) -> None:
    assert reason in str(refused(text))


def test_deep_nesting_is_an_expression_error() -> None:
    error = refused("-" * 100_000 + "1")
    assert len(str(error)) < 300  # one line, not the 100 001 characters
    assert "... (100001 characters): cannot be parsed" in str(error)
    refused("(" * 10_000 + "1" + ")" * 10_000)


def test_bad_variable_names_are_programming_errors() -> None:
    with pytest.raises(TypeError):
        compile_expression("t", "t")
    for bad in ("_hidden", "__builtins__", "not an identifier", "lambda"):
        with pytest.raises(ValueError, match="invalid expression variable name"):
            compile_expression("1", [bad])
    with pytest.raises(TypeError):
        compile_expression(3, [])  # type: ignore[arg-type]


def test_error_is_a_value_error_and_pickles() -> None:
    err = refused("foo")
    assert isinstance(err, ValueError)
    copy = pickle.loads(pickle.dumps(err))
    assert str(copy) == str(err)


# --- run-time failures ------------------------------------------------------


def test_trial_at_zero() -> None:
    with pytest.raises(ExpressionError, match=r"'1/t'.*fails at t=0.*ZeroDivision"):
        compile_expression("1/t", TIME_VARIABLES)
    expr = compile_expression("1/t", TIME_VARIABLES, trial=False)
    assert expr({"t": 0.5}) == 2


def test_trial_failure_for_constant() -> None:
    with pytest.raises(ExpressionError, match=r"'1/0'.*fails: ZeroDivision"):
        compile_expression("1/0", TIME_VARIABLES)


def test_runtime_error_names_expression_and_values() -> None:
    expr = compile_expression("(8, 16)[int(t*2)]", TIME_VARIABLES)
    with pytest.raises(ExpressionError) as info:
        expr(time_variables(299, 300))
    message = str(info.value)
    assert "'(8, 16)[int(t*2)]'" in message
    assert "t=1.0" in message
    assert "IndexError" in message
    assert isinstance(info.value.__cause__, IndexError)


@pytest.mark.parametrize(
    "text",
    [
        "10.0 ** 1000",  # float overflow
        "9 ** 9 ** 9",  # would take forever as an integer
        "(0,) * 10 ** 9",  # would exhaust memory
        "10 ** 9 * [0]",
        "sqrt(-1)",
        "int(math.inf)",
        "min(1)",
        "{0: 1}[2]",
        "{[1]: 2}",
        "round(2, -10 ** 100)",  # would work out 10**(10**100)
    ],
)
def test_runtime_failures_become_expression_errors(text: str) -> None:
    refused(text)
    with pytest.raises(ExpressionError):
        compile_expression(text, (), trial=False)()


def test_guards_leave_ordinary_products_and_powers_alone() -> None:
    assert evaluate_constant("2 ** 64") == 18446744073709551616
    assert evaluate_constant("2 ** -1") == 0.5
    assert evaluate_constant("(1, 2) * 3") == (1, 2, 1, 2, 1, 2)
    assert evaluate_constant("1.5 * 2") == 3.0
    assert evaluate_constant("round(1234, -2)") == 1200
    assert evaluate_constant("round(2.5)") == 2


# --- time variables ---------------------------------------------------------


def test_time_variables_first_epoch() -> None:
    values = time_variables(0, 300)
    assert tuple(values) == TIME_VARIABLES
    assert values["epoch"] == 0
    assert values["t"] == 0
    assert values["ti"] == 1
    assert values["t3"] == 0
    assert values["ti5"] == 1


def test_time_variables_last_epoch_is_exactly_one() -> None:
    values = time_variables(299, 300)
    assert values["t"] == 1.0
    assert values["ti"] == 0.0
    assert values["t5"] == 1.0
    assert values["epoch"] == 299
    assert isinstance(values["epoch"], int)


def test_time_variables_powers() -> None:
    values = time_variables(1, 3)
    assert values["t"] == 0.5
    for n in range(2, 6):
        assert values[f"t{n}"] == pytest.approx(0.5**n)
        assert values[f"ti{n}"] == pytest.approx(0.5**n)


def test_time_variables_single_epoch() -> None:
    values = time_variables(0, 1)
    assert values["t"] == 0
    assert values["ti"] == 1


def test_time_variables_feed_expressions() -> None:
    expr = compile_expression("t + ti + t2 + ti2 + epoch", TIME_VARIABLES)
    assert expr(time_variables(150, 301)) == pytest.approx(1 + 0.25 + 0.25 + 150)


# --- CLIPig's time_step and the similarity as a tensor ------------------------------------


@pytest.mark.parametrize(("t", "args", "expected"), [
    (0.0, (0, 1), 0.0), (0.25, (0, 1), 0.25), (1.0, (0, 1), 1.0),
    (0.25, (0.5, 1), 0.0), (0.75, (0.5, 1), 0.5),  # rises over the second half
    (0.0, (0.5, 0), 1.0), (0.25, (0.5, 0), 0.5), (0.75, (0.5, 0), 0.0),  # falls over the first
    (0.4, (0.5, 0.5), 0.0), (0.5, (0.5, 0.5), 1.0),  # equal ends: a step
])
def test_time_step_by_hand(t, args, expected):
    expr = compile_expression(f"time_step({args[0]}, {args[1]})", TIME_VARIABLES)
    assert expr.names == {"t"}
    assert expr({"t": t}) == pytest.approx(expected)


def test_time_step_needs_the_time_and_two_numbers():
    with pytest.raises(ExpressionError, match="needs the training time"):
        compile_expression("time_step(0, 1)", ("width",))
    with pytest.raises(ExpressionError, match="takes two numbers"):
        compile_expression("time_step(0)", TIME_VARIABLES)


def test_the_long_time_names_equal_the_short_ones():
    values = time_variables(3, 11)
    assert values["time"] == values["t"] and values["time_inverse4"] == values["ti4"]


@pytest.mark.parametrize("text", [
    "sim / 100",
    "1 if sim > 20 else 0.5",
    "max(0.1, min(sim / 50, 2))",
    "abs(sim) ** 0.5 + sin(sim) * math.cos(t)",
    "0 < sim < 30 and t < 0.5 or sim > 40",
    "not sim > 10",
    "round(sim / 7, 1) + int(sim / 9) + floor(sim / 11)",
    "time_step(0, 1) * sim + {0: 1}.get(0, 2)",
])
def test_an_expression_of_the_similarity_works_element_by_element(text):
    import torch

    expr = compile_expression(text, ("sim", "t"))
    sims = [-35.0, -5.0, 0.0, 12.5, 25.0, 45.0]
    out = expr({"sim": torch.tensor(sims, dtype=torch.float64), "t": 0.3})
    one_by_one = [float(expr({"sim": s, "t": 0.3})) for s in sims]
    assert [float(v) for v in out] == pytest.approx(one_by_one)


def test_a_function_without_an_element_wise_form_is_refused_on_the_similarity():
    import torch

    expr = compile_expression("gcd(int(sim), 3)", ("sim",))
    assert expr({"sim": 6.0}) == 3
    with pytest.raises(ExpressionError, match="cannot take the similarity"):
        expr({"sim": torch.tensor([6.0, 9.0])})


def test_the_element_wise_helpers_stay_out_of_reach():
    for text in ("_where(1, 2, 3)", "_vcall('system', 1)", "_all(1)"):
        with pytest.raises(ExpressionError, match="not allowed"):
            compile_expression(text, ("sim",))
