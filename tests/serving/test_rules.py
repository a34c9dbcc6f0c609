"""The rule language (``serving.rules``): every operator against hand-computed results on a
small catalogue in PostgreSQL, references, boosters, errors, injection and fuzzing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recommender.models import Item
from recommender.serving import rules

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
SCHEMA = {
    "price": "number",
    "brand": "string",
    "colors": "set",
    "organic": "boolean",
    "launch": "timestamp",
}
ALL = {"apple", "bread", "cola", "juice", "laptop", "mystery", "oddity", "tea"}

# external_id → fields. "juice" stores its colors as a string, "oddity" every attribute with
# the wrong type, "mystery" no attributes and its tags as a string (not a list).
CATALOGUE = {
    "apple": dict(
        category="food",
        tags=["organic", "fruit"],
        attributes={
            "price": 3,
            "brand": "Lumetra",
            "colors": ["red", "green"],
            "organic": True,
            "launch": "2024-01-10T00:00:00+00:00",
        },
        created_at=NOW - timedelta(days=2),
        available_until=NOW + timedelta(days=10),
    ),
    "bread": dict(
        category="food",
        tags=["bakery"],
        attributes={
            "price": 2.5,
            "brand": "Bako",
            "colors": ["brown"],
            "organic": False,
            "launch": "2023-06-01T00:00:00+00:00",
        },
        created_at=NOW - timedelta(days=30),
    ),
    "cola": dict(
        category="drinks",
        tags=["soda"],
        attributes={"price": 1.5, "brand": "Fizz", "organic": False},
        created_at=NOW - timedelta(days=1),
        available_until=NOW - timedelta(days=1),
    ),
    "juice": dict(
        category="drinks",
        tags=["organic"],
        attributes={"price": 4, "brand": "Lumetra", "colors": "orange", "organic": True},
        created_at=NOW - timedelta(days=10),
        available_until=NOW + timedelta(days=1),
    ),
    "laptop": dict(
        category="electronics",
        tags=["electronics"],
        attributes={"price": 999, "brand": "Compu", "colors": ["silver"]},
        created_at=NOW - timedelta(days=100),
        available_from=NOW + timedelta(days=5),
    ),
    "mystery": dict(category="", tags="organic", attributes={}, created_at=NOW - timedelta(days=5)),
    "oddity": dict(
        category="food",
        tags=["organic"],
        attributes={
            "price": "cheap",
            "brand": 7,
            "colors": [1, 2],
            "organic": "yes",
            "launch": "not a date",
        },
        created_at=NOW - timedelta(days=3),
    ),
    "tea": dict(
        category="drinks",
        tags=["organic", "hot"],
        attributes={
            "price": 300,
            "brand": "O'Brien",
            "colors": ["green"],
            "organic": True,
            "launch": "2025-03-01T12:00:00Z",
        },
        created_at=NOW - timedelta(days=6),
    ),
}


@pytest.fixture
def catalogue(db):
    for external_id, fields in CATALOGUE.items():
        Item.objects.create(external_id=external_id, title=external_id.title(), **fields)


def compile_(text: str, kind: str = "filter", **bindings) -> tuple[str, list]:
    sql, params = rules.to_sql(rules.parse(text, kind, SCHEMA), now=NOW, **bindings)
    assert sql.count("%s") == len(params)
    return sql, params


def matching(text: str, **bindings) -> set[str]:
    sql, params = compile_(text, **bindings)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT external_id FROM recommender_item WHERE {sql}", params)
        return {row[0] for row in cursor.fetchall()}


def boosts(text: str, **bindings) -> dict[str, float]:
    sql, params = compile_(text, "boost", **bindings)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT external_id, {sql} FROM recommender_item", params)
        return dict(cursor.fetchall())


def error(text: str, kind: str = "filter", **bindings) -> rules.RuleError:
    with pytest.raises(rules.RuleError) as caught:
        compile_(text, kind, **bindings)
    return caught.value


# --- Operators ---------------------------------------------------------------------------

CASES = [
    # numbers (a price stored as text, or none, is never matched)
    ("price < 3", {"bread", "cola"}),
    ("price <= 3", {"apple", "bread", "cola"}),
    ("price > 4", {"laptop", "tea"}),
    ("price >= 4", {"juice", "laptop", "tea"}),
    ("price == 300", {"tea"}),
    ("price != 3", {"bread", "cola", "juice", "laptop", "tea"}),
    ("not (price < 3)", {"apple", "juice", "laptop", "tea"}),
    ("price * 2 > 7", {"juice", "laptop", "tea"}),
    ("price - 1 == 2", {"apple"}),
    ("price + 0.5 == 2", {"cola"}),
    ("-price < -100", {"laptop", "tea"}),
    ("price / 0 > 1 or price / 0 <= 1", set()),
    ("price in (3, 4)", {"apple", "juice"}),
    ("price not in (3, 4)", {"bread", "cola", "laptop", "tea"}),
    # min/max of a missing value are missing (unlike SQL's LEAST/GREATEST)
    ("min(price, 10) == 10", {"laptop", "tea"}),
    ("max(price, 10) == 10", {"apple", "bread", "cola", "juice"}),
    ("max(price, 10, 500) == 500", {"apple", "bread", "cola", "juice", "tea"}),
    ("min(price * 2, 7) == 7", {"juice", "laptop", "tea"}),
    ("if(organic, price, 0) > 3.5", {"juice", "tea"}),
    ("(price > 2) + (organic == true) == 2", {"apple", "juice", "tea"}),
    # strings
    ('brand == "Lumetra"', {"apple", "juice"}),
    ('"Lumetra" == brand', {"apple", "juice"}),
    ('brand != "Lumetra"', {"bread", "cola", "laptop", "tea"}),
    ('not (brand == "Lumetra")', {"bread", "cola", "laptop", "tea"}),
    ('brand in ("Bako", "Fizz")', {"bread", "cola"}),
    ('brand not in ("Bako", "Fizz")', {"apple", "juice", "laptop", "tea"}),
    ('not (brand in ("Bako", "Fizz"))', {"apple", "juice", "laptop", "tea"}),
    ('brand < "C"', {"bread"}),
    ("brand == 'O\\'Brien'", {"tea"}),
    ('category == "food"', {"apple", "bread", "oddity"}),
    ('category in ("food", "drinks")', {"apple", "bread", "cola", "juice", "oddity", "tea"}),
    ('category not in ("food", "drinks")', {"laptop", "mystery"}),
    ('title == "Tea" or external_id in ("cola",)', {"cola", "tea"}),
    ("category in ()", set()),
    # sets (one stored as a string, or missing, is the empty set)
    ('"organic" in tags', {"apple", "juice", "oddity", "tea"}),
    ('"organic" not in tags', {"bread", "cola", "laptop", "mystery"}),
    ("category in tags", {"laptop"}),
    ("category not in tags", ALL - {"laptop"}),
    ('"green" in colors', {"apple", "tea"}),
    ('"orange" in colors', set()),
    ('"red" not in colors', ALL - {"apple"}),
    ("brand in colors or brand in tags", set()),
    # booleans
    ("organic", {"apple", "juice", "tea"}),
    ("organic == true", {"apple", "juice", "tea"}),
    ("organic == false", {"bread", "cola"}),
    ("not organic", {"bread", "cola"}),
    ("organic != true", {"bread", "cola"}),
    ("organic in (false,)", {"bread", "cola"}),
    ("true", ALL),
    ("false or not true", set()),
    # timestamps (a launch that is no timestamp is never matched)
    ('launch > "2024-01-01"', {"apple", "tea"}),
    ("launch < now() - days(365)", {"apple", "bread"}),
    ("created_at > now() - days(7)", {"apple", "cola", "mystery", "oddity", "tea"}),
    ("created_at > now() - hours(36)", {"cola"}),
    ("created_at >= now() - minutes(60 * 48)", {"apple", "cola"}),
    ("created_at + days(2) >= now()", {"apple", "cola"}),
    ("created_at > now() - days(if(organic, 7, 3))", {"apple", "cola", "tea"}),
    ("created_at > now() - days(price)", {"apple", "cola", "laptop", "tea"}),
    # a duration computed from an item is clamped to 100 years, never out of range
    ("created_at > now() - days(price * 1e300)", ALL - {"mystery", "oddity"}),
    ("available_until > now()", {"apple", "juice"}),
    ("available_from > now()", {"laptop"}),
    ('max(created_at, available_from) > "2025-06-01T00:00:00Z"', {"laptop"}),
    # exists: a value of the declared type
    ("exists(available_until)", {"apple", "cola", "juice"}),
    ("exists(price)", {"apple", "bread", "cola", "juice", "laptop", "tea"}),
    ("exists(colors)", {"apple", "bread", "laptop", "oddity", "tea"}),
    ("exists(launch)", {"apple", "bread", "tea"}),
    ("not exists(brand)", {"mystery", "oddity"}),
    ("exists(tags) and exists(category)", ALL - {"mystery"}),
    # and / or / parentheses
    ('price < 3 or brand == "Compu"', {"bread", "cola", "laptop"}),
    ('(price < 3 or brand == "Compu") and category != "drinks"', {"bread", "laptop"}),
    ('not (price < 3 or brand == "Compu")', {"apple", "juice", "tea"}),
    (
        'price < 300 and "organic" in tags and category in ("food","drinks") '
        "and available_until > now()",
        {"apple", "juice"},
    ),
]


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[text for text, _ in CASES])
def test_operator_matches_hand_computed_items(catalogue, text, expected):
    assert matching(text) == expected


def test_attribute_names_and_values_are_parameters_not_sql():
    sql, params = compile_('price < 3 and brand == "Lumetra" and "red" in colors')
    for name in ("price", "brand", "colors", "Lumetra", "red"):
        assert name not in sql
    assert params == ["price", 3.0, "brand", "Lumetra", "colors", "red"]


def test_string_equality_uses_the_indexable_containment_only_where_it_is_equivalent():
    assert "@>" in compile_('brand == "Lumetra" and price > 1')[0]
    assert "@>" in compile_('brand in ("a", "b")')[0]
    assert "@>" not in compile_('not (brand == "Lumetra")')[0]
    assert "@>" not in compile_('brand not in ("a", "b")')[0]


def test_now_is_a_parameter_not_sql_now():
    sql, params = compile_("available_until > now()")
    assert "now()" not in sql.lower()
    assert params == [NOW]


# --- References --------------------------------------------------------------------------


def test_context_reference_present_and_missing(catalogue):
    assert matching('context.device == "mobile"', context={"device": "mobile"}) == ALL
    assert matching('context.device == "mobile"', context={"device": "web"}) == set()
    assert matching('context.device == "mobile"', context={}) == set()
    assert matching('context.device != "mobile"') == set()
    assert matching('context.page in ("home", "cart")', context={"page": "cart"}) == ALL


def test_user_reference_compares_like_a_value(catalogue):
    assert matching("brand == user.favourite", user={"favourite": "Bako"}) == {"bread"}
    assert matching("price < user.budget", user={"budget": 3}) == {"bread", "cola"}
    assert matching("price < user.budget", user={"budget": None}) == set()
    assert matching("price < user.budget") == set()


def test_list_valued_user_reference(catalogue):
    blocked = {"blocked_brands": ["Lumetra", "Fizz"]}
    assert matching("brand not in user.blocked_brands", user=blocked) == {"bread", "laptop", "tea"}
    assert matching("brand in user.blocked_brands", user=blocked) == {"apple", "cola", "juice"}
    assert matching("brand not in user.blocked_brands", user={"blocked_brands": []}) == {
        "apple",
        "bread",
        "cola",
        "juice",
        "laptop",
        "tea",
    }
    # A missing list is NULL: nothing passes, unless the rule says what then.
    assert matching("brand not in user.blocked_brands") == set()
    text = "not exists(user.blocked_brands) or brand not in user.blocked_brands"
    assert matching(text) == ALL
    assert matching('"organic" in user.diets', user={"diets": ["organic", "vegan"]}) == ALL
    assert matching("price in $prices", params={"prices": [3, 4.0]}) == {"apple", "juice"}
    assert matching("launch in $days", params={"days": ["2025-03-01T12:00:00Z"]}) == {"tea"}


def test_parameters_given_and_missing(catalogue):
    assert matching("price <= $max_price", params={"max_price": 3}) == {"apple", "bread", "cola"}
    since = {"since": "2025-05-30T00:00:00Z"}
    assert matching("created_at > $since", params=since) == {"apple", "cola"}
    assert matching("$only_food and category == 'food'", params={"only_food": True}) == {
        "apple",
        "bread",
        "oddity",
    }
    assert matching("$flag", params={"flag": False}) == set()
    assert matching("exists($maybe) or price > 500") == {"laptop"}
    problem = error("category == 'food' and price <= $max_price")
    assert problem.message == "parameter $max_price is not given"
    assert problem.position == len("category == 'food' and price <= ")


def test_references_are_listed():
    rule = rules.parse(
        'user.segment == "a" and context.device == "mobile" and price < $max_price',
        "filter",
        SCHEMA,
    )
    assert rule.references() == {"user.segment", "context.device", "$max_price"}
    assert rules.parse("price < 3", schema=SCHEMA).references() == frozenset()


@pytest.mark.parametrize(
    ("text", "bindings", "position"),
    [
        ("price < user.budget", {"user": {"budget": "cheap"}}, 8),
        ("brand == $brand", {"params": {"brand": 7}}, 9),
        ("category in user.likes", {"user": {"likes": "food"}}, 12),
        ("brand in user.likes", {"user": {"likes": ["a", 1]}}, 9),
        ("$flag", {"params": {"flag": "yes"}}, 0),
        ("created_at > $since", {"params": {"since": "last week"}}, 13),
        ("price < user.budget", {"user": {"budget": {"max": 3}}}, 8),
        ("price < $p", {"params": {"p": float("nan")}}, 8),
        ("price < $p", {"params": {"p": 10**400}}, 8),
    ],
)
def test_bound_value_of_the_wrong_type_is_an_error_at_the_reference(text, bindings, position):
    problem = error(text, **bindings)
    assert problem.position == position, problem


# --- Boosters ----------------------------------------------------------------------------


def test_booster_if(catalogue):
    values = boosts('if(brand == "Lumetra", 1.2, 1.0)')
    assert values == {name: 1.2 if name in {"apple", "juice"} else 1.0 for name in ALL}


def test_booster_counts_a_condition_as_0_or_1(catalogue):
    values = boosts("1 + 0.5 * (created_at > now() - days(7))")
    recent = {"apple", "cola", "mystery", "oddity", "tea"}
    assert values == {name: 1.5 if name in recent else 1.0 for name in ALL}
    food = boosts('$weight * (category == "food")', params={"weight": 2})
    assert food == {name: 2.0 if name in {"apple", "bread", "oddity"} else 0.0 for name in ALL}


def test_booster_missing_value_is_the_neutral(catalogue):
    values = boosts("price / 100")
    assert values["apple"] == pytest.approx(0.03)
    assert values["laptop"] == pytest.approx(9.99)
    assert values["mystery"] == values["oddity"] == 1.0
    values = boosts("price / 100", neutral=0.5)
    assert values["mystery"] == values["oddity"] == 0.5
    assert boosts("price / 0")["apple"] == 1.0
    assert boosts("user.weight") == dict.fromkeys(ALL, 1.0)


def test_booster_min_max_and_condition_in_if(catalogue):
    values = boosts("max(1, min(price / 100, 2))")
    assert values["laptop"] == 2.0 and values["tea"] == 2.0 and values["apple"] == 1.0
    assert values["mystery"] == 1.0
    assert boosts("max(1, min(price / 100, 2))", neutral=0.5)["mystery"] == 0.5
    assert boosts("if(organic, 2, 0.5)") == {
        name: 2.0 if name in {"apple", "juice", "tea"} else 0.5 for name in ALL
    }


def test_booster_arithmetic_beyond_float8_is_clamped_not_an_error(catalogue):
    values = boosts("price * 1e300 * 1e300")
    assert values["tea"] == 1e308 and values["mystery"] == 1.0
    assert boosts("price / 1e300 / 1e300")["tea"] == 0.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("created_at > now() - days(7)", "a booster must be a number, but this is a condition"),
        ("brand", "a booster must be a number, but this is a string"),
        ("days(1)", "a booster must be a number, but this is a duration"),
    ],
)
def test_booster_must_be_a_number(text, message):
    assert error(text, "boost").message.startswith(message)


# --- Errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "position", "message"),
    [
        ("price < 300 and", 15, "expected a value after 'and'"),
        ("price < 300 and or brand", 16, "expected a value after 'and', not 'or'"),
        ("price = 3", 6, "unexpected '=': compare with '==' or '!='"),
        ("price 3", 6, "expected an operator after 'price', not '3'"),
        ("(price < 3", 10, "expected ',' or ')' after '3'"),
        ("price < 3)", 9, "this ')' closes no '('"),
        (
            'category in ("a" "b")',
            17,
            "expected ',', ')' or an operator after '\"a\"', not '\"b\"'",
        ),
        ('brand == "Lumetra', 9, "this string has no closing quote on its line"),
        ("price < 3 & price > 1", 10, "unexpected character '&'"),
        ("", 0, "the rule is empty"),
        ("price <\n < 3", 9, "expected a value after '<', not '<'"),
        ('"\\q" in tags', 1, "the escape \\q is not allowed in a string"),
        ("price < $", 8, "a parameter is '$' followed by a name, like $max_price"),
        ("user.", 5, "expected a name after '.'"),
        ("shop.owner == 1", 0, "unknown name 'shop.owner'"),
    ],
)
def test_syntax_error_position_and_words(text, position, message):
    problem = error(text)
    assert problem.position == position, problem
    assert problem.message.startswith(message), problem
    assert str(problem).endswith(problem.message)


def test_error_line_and_column():
    problem = error("price < 3\n  and and")
    assert (problem.line, problem.column, problem.position) == (2, 7, 16)
    assert str(problem) == "line 2, column 7: expected a value after 'and', not 'and'"
    assert str(error("price < 300 and")) == "column 16: expected a value after 'and'"
    assert isinstance(problem, ValueError)


@pytest.mark.parametrize(
    ("text", "position", "message"),
    [
        ('price == "a"', 9, 'cannot compare price (a number) with "a" (a string)'),
        ("price < 3 and brand", 14, "brand is a string, not a condition (for 'and')"),
        ("price", 0, "a filter must be a condition (true or false), but this is a number"),
        ('tags == "a"', 0, "tags is a set: it cannot be compared"),
        ('"a" in brand', 7, "'in' needs a set, a list or a tuple on its right"),
        ("3 in tags", 0, "3 is a number, not a string"),
        ("tags in colors", 0, "tags is a set: the left of 'in' must be one value"),
        ('price in (1, "2")', 13, 'cannot mix price (a number) with "2" (a string)'),
        ("organic < true", 0, "conditions cannot be ordered"),
        ("created_at > now() - 7", 13, "now() - 7: only a duration"),
        ('launch > "yesterday"', 9, '"yesterday" is no timestamp'),
        ("days(1e9) > 0", 0, "days(1e9) is longer than 100 years"),
        ("price < 1e400", 8, "the number 1e400 is out of range"),
        ("1e300 * 1e300 > price", 0, "1e300 * 1e300 is out of range"),
        ("price < frobnicate(3)", 8, "unknown function 'frobnicate'"),
        ("if(price, 1, 2) > 0", 3, "price is a number, not a condition"),
        ("min(price) > 1", 0, "min() takes at least 2 arguments"),
        ("exists(price > 3)", 7, "exists() takes a field or a reference"),
        ("weight > 3", 0, "unknown field 'weight'; known: available_from, available_until, brand"),
    ],
)
def test_type_error_position_and_words(text, position, message):
    problem = error(text)
    assert problem.position == position, problem
    assert problem.message.startswith(message), problem


def test_unknown_field_without_a_schema_names_the_item_fields():
    with pytest.raises(rules.RuleError) as caught:
        rules.parse("price < 3")
    assert caught.value.message == (
        "unknown field 'price'; known: available_from, available_until, category, "
        "created_at, external_id, tags, title, updated_at"
    )


@pytest.mark.parametrize(
    "text",
    [
        "(" * 500 + "price < 3" + ")" * 500,
        "not " * 300 + "organic",
        "1" + " + 1" * 400 + " > price",
        "if(" * 100 + "organic" + ", 1, 2)" * 100 + " > 0",
    ],
    ids=["parentheses", "not", "plus", "if"],
)
def test_too_deep_is_a_rule_error_not_a_recursion_error(text):
    assert "nested too deeply" in error(text).message


def test_too_long_is_a_rule_error():
    text = "price < 3" + " or price < 3" * 200
    assert len(text) > rules.MAX_LENGTH
    problem = error(text)
    assert problem.message == "the rule is longer than 2000 characters"
    assert problem.position == rules.MAX_LENGTH


def test_long_flat_chains_are_no_nesting():
    text = " and ".join(f"price != {n}" for n in range(100))
    assert len(text) < rules.MAX_LENGTH
    compile_(text)


def test_schema_and_kind_mistakes_are_the_callers():
    with pytest.raises(ValueError, match="unknown type 'money'"):
        rules.parse("price < 3", schema={"price": "money"})
    with pytest.raises(ValueError, match="kind must be"):
        rules.parse("price < 3", "sort", SCHEMA)
    with pytest.raises(ValueError, match="table"):
        rules.to_sql(rules.parse("true"), table="item; DROP TABLE x")


def test_rules_are_cached_hashable_and_reusable():
    first = rules.parse("price < 3", "filter", SCHEMA)
    assert rules.parse("price < 3", "filter", dict(SCHEMA)) is first
    assert first == rules.Rule("price < 3", "filter", tuple(sorted(SCHEMA.items())))
    assert len({first, rules.parse("price  <  3", "filter", SCHEMA)}) == 2
    assert rules.to_sql(first, now=NOW) == rules.to_sql(first, now=NOW)


# --- Injection ---------------------------------------------------------------------------

HOSTILE = [
    "x'); DROP TABLE recommender_item; --",
    "food' OR '1'='1",
    'food" OR 1=1 --',
    "100%s %(x)s %% \\",
    "'; DELETE FROM recommender_item WHERE ''='",
]


def _assert_table_intact():
    assert Item.objects.count() == len(CATALOGUE)


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_literal_is_a_plain_string(catalogue, value):
    literal = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    text = f"category == {literal} or brand in ({literal}, 'Bako') or {literal} in tags"
    sql, params = compile_(text)
    assert value not in sql and "DROP" not in sql and "DELETE" not in sql
    assert value in params
    assert matching(text) == {"bread"}
    _assert_table_intact()


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_parameter_and_user_attribute_are_plain_strings(catalogue, value):
    text = "category == $p or brand == user.fav or context.page in tags"
    bindings = {"params": {"p": value}, "user": {"fav": value}, "context": {"page": value}}
    sql, params = compile_(text, **bindings)
    assert value not in sql
    assert matching(text, **bindings) == set()
    assert matching("category == $p", params={"p": "food"}) == {"apple", "bread", "oddity"}
    assert matching("brand not in user.bad", user={"bad": [value, "Bako"]}) == {
        "apple",
        "cola",
        "juice",
        "laptop",
        "tea",
    }
    _assert_table_intact()


@pytest.mark.parametrize(
    "text",
    [
        "brand' == 'x'",
        "user.x' == 'a'",
        '$a"b == 1',
        "category == 'x' -- and price < 3",
        "category == 'x'; DROP TABLE recommender_item",
        "price < 3 /* */",
        "`price` < 3",
    ],
)
def test_names_with_quotes_and_sql_syntax_are_syntax_errors(catalogue, text):
    error(text)
    _assert_table_intact()


def test_string_with_a_nul_is_a_rule_error():
    assert "NUL" in error('category == "a\\u0000b"').message
    assert "NUL" in error("category == $p", params={"p": "a\x00b"}).message


def test_string_escapes(catalogue):
    assert matching('"\\u006frganic" in tags') == {"apple", "juice", "oddity", "tea"}
    sql, params = compile_('title == "tab\\there \\"quoted\\" \\\\ it\'s"')
    assert params == ['tab\there "quoted" \\ it\'s']


# --- Fuzzing -----------------------------------------------------------------------------

_TOKENS = [
    "price", "brand", "colors", "organic", "launch", "tags", "category", "created_at", "x",
    "user.a", "context.b", "$p", "and", "or", "not", "in", "true", "false", "(", ")", ",",
    "==", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/", "1", "2.5", "1e999", '"a"', "'b'",
    "now()", "days(", "if(", "min(", "exists(", ".", "$", "=", '"', "\\",
]  # fmt: skip


@pytest.mark.fuzz
@settings(max_examples=300, deadline=None, database=None)
@given(
    st.one_of(
        st.text(max_size=120),
        st.lists(st.sampled_from(_TOKENS), max_size=25).map(" ".join),
        st.lists(st.sampled_from(_TOKENS), max_size=25).map("".join),
    ),
    st.sampled_from(["filter", "boost"]),
)
def test_parse_raises_nothing_but_rule_error(text, kind):
    try:
        rules.parse(text, kind, SCHEMA)
    except rules.RuleError as problem:
        assert 0 <= problem.position <= len(text)
        assert problem.line >= 1 and problem.column >= 1


def _expressions():
    """Rule texts over the grammar: mostly well typed, sometimes not."""
    numbers = st.deferred(
        lambda: st.one_of(
            st.sampled_from(
                ["price", "0", "1", "2.5", "-4", "1e300", "$n", "user.score", "context.none"]
            ),
            st.tuples(numbers, st.sampled_from("+-*/"), numbers).map(
                "({0[0]} {0[1]} {0[2]})".format
            ),
            st.tuples(st.sampled_from(["min", "max"]), numbers, numbers).map(
                "{0[0]}({0[1]}, {0[2]})".format
            ),
            st.tuples(conditions, numbers, numbers).map("if({0[0]}, {0[1]}, {0[2]})".format),
            # a condition counts 0/1 in arithmetic
            st.tuples(numbers, st.sampled_from("+-*/"), conditions).map(
                "({0[0]} {0[1]} ({0[2]}))".format
            ),
        )
    )
    strings = st.sampled_from(
        ["brand", "category", "title", '"Lumetra"', "'x'", "user.fav", "$s", "context.device"]
    )
    durations = st.tuples(st.sampled_from(["days", "hours", "minutes"]), numbers).map(
        "{0[0]}({0[1]})".format
    )
    times = st.deferred(
        lambda: st.one_of(
            st.sampled_from(
                ["created_at", "available_until", "launch", "now()", '"2024-01-01"', "$since"]
            ),
            st.tuples(times, st.sampled_from("+-"), durations).map("({0[0]} {0[1]} {0[2]})".format),
        )
    )
    anything = st.one_of(numbers, strings, times, st.sampled_from(["tags", "colors", "organic"]))
    operators = st.sampled_from(["==", "!=", "<", "<=", ">", ">="])
    conditions = st.deferred(
        lambda: st.one_of(
            st.sampled_from(["organic", "true", "exists(price)", "exists(colors)", "$flag"]),
            st.tuples(numbers, operators, numbers).map(" ".join),
            st.tuples(strings, operators, strings).map(" ".join),
            st.tuples(times, operators, times).map(" ".join),
            st.tuples(anything, operators, anything).map(" ".join),
            st.tuples(
                strings,
                st.sampled_from(["in", "not in"]),
                st.sampled_from(
                    ["tags", "colors", "user.blocked", '("a", "b")', "(brand, user.fav)", "()"]
                ),
            ).map(" ".join),
            st.tuples(
                numbers,
                st.sampled_from(["in", "not in"]),
                st.sampled_from(["(1, 2.5)", "$list", "(price, 3)"]),
            ).map(" ".join),
            st.tuples(conditions, st.sampled_from(["and", "or"]), conditions).map(
                "({0[0]} {0[1]} {0[2]})".format
            ),
            conditions.map("not {}".format),
        )
    )
    # Mostly a filter's condition or a booster's number, sometimes the other kind.
    filters = st.tuples(st.just("filter"), conditions)
    boosters = st.tuples(st.just("boost"), numbers)
    mixed = st.tuples(st.sampled_from(["filter", "boost"]), st.one_of(conditions, numbers))
    return st.one_of(filters, boosters, mixed)


BINDINGS = {
    "user": {"score": 2.5, "fav": "Lumetra", "blocked": ["Bako", "x"]},
    "context": {"device": "mobile"},
    "params": {"n": 3, "s": "food", "since": "2025-01-01T00:00:00Z", "flag": True, "list": [1, 4]},
}


@pytest.mark.fuzz
@settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(_expressions())
def test_generated_rules_compile_and_run_without_a_database_error(catalogue, generated):
    kind, text = generated
    try:
        sql, params = rules.to_sql(rules.parse(text, kind, SCHEMA), now=NOW, **BINDINGS)
    except rules.RuleError:
        return
    assert sql.count("%s") == len(params)
    query = (
        f"SELECT count(*) FROM recommender_item WHERE {sql}"
        if kind == "filter"
        else f"SELECT max({sql}) FROM recommender_item"
    )
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(query, params)
        cursor.fetchall()


# --- When a verdict can change as time passes (``rules.clock``) ----------------------------


def clock_of(text: str, **bindings) -> rules.Clock:
    return rules.clock(rules.parse(text, "filter", SCHEMA), now=NOW, **bindings)


def first_moments(clock: rules.Clock, after: datetime) -> dict[str, datetime | None]:
    """Each item's first moment after ``after``, from the clock's known moments and its
    columns evaluated in PostgreSQL."""
    known = [moment for moment in clock.moments if moment >= after]
    found = dict.fromkeys(CATALOGUE, min(known, default=None))
    if clock.columns:
        array = "ARRAY[" + ", ".join(sql for sql, _ in clock.columns) + "]::timestamptz[]"
        params = [param for _, column_params in clock.columns for param in column_params]
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT external_id, (SELECT min(m) FROM unnest("
                + array
                + ") m WHERE m >= %s) FROM recommender_item",
                [*params, after],
            )
            for external_id, moment in cursor.fetchall():
                candidates = [m for m in (found[external_id], moment) if m is not None]
                found[external_id] = min(candidates, default=None)
    return found


def test_a_rule_without_now_never_changes_with_time():
    assert not rules.parse("price < 3 and launch > '2024-01-01'", "filter", SCHEMA).uses_now
    assert clock_of("price < 3 and launch > '2024-01-01'") == rules.Clock()


def test_moments_of_comparisons_with_now(catalogue):
    # An item's timestamp against now(), give or take durations: that item's own moment.
    assert first_moments(clock_of("available_until > now()"), NOW) == {
        **dict.fromkeys(CATALOGUE),
        "apple": NOW + timedelta(days=10),
        "juice": NOW + timedelta(days=1),
    }
    fresh = first_moments(clock_of("created_at > now() - days(7)"), NOW)
    assert fresh["apple"] == NOW + timedelta(days=5) and fresh["tea"] == NOW + timedelta(days=1)
    assert fresh["bread"] is None  # 30 days old: it changed in the past, never again
    assert first_moments(clock_of("launch + hours(2) > now()"), datetime(2025, 2, 1, tzinfo=UTC))[
        "tea"
    ] == datetime(2025, 3, 1, 14, 0, tzinfo=UTC)
    # Constants and bound values: one moment for every item.
    assert clock_of("now() < '2030-01-01' + days(1)").moments == (datetime(2030, 1, 2, tzinfo=UTC),)
    assert clock_of("$start <= now() + minutes(30)", params={"start": "2026-01-01"}).moments == (
        datetime(2025, 12, 31, 23, 30, tzinfo=UTC),
    )
    # now() against now(), or against a missing value: the same verdict at every moment.
    assert clock_of("now() > now() - days(1) and user.gone > now()") == rules.Clock()


@pytest.mark.parametrize(
    "text",
    [
        "max(now(), created_at) > created_at",  # now() inside a function
        "now() - days(price) < created_at",  # a duration only the item knows
        "now() in (launch, created_at)",
        "if(price > 3, now(), created_at) > launch",
    ],
)
def test_a_now_the_analysis_cannot_follow_is_not_settled(catalogue, text):
    assert not clock_of(text).settled


def _clock_rules():
    """Filters comparing item timestamps, constants and bound values with now() give or
    take constant durations, combined with and, or and not."""
    durations = st.tuples(
        st.sampled_from(["days", "hours", "minutes"]), st.sampled_from(["1", "2.5", "7", "-3"])
    ).map("{0[0]}({0[1]})".format)
    base = st.sampled_from(
        ["created_at", "available_until", "available_from", "launch", '"2025-06-03"', "$since"]
    )
    clock = st.one_of(
        st.just("now()"),
        st.tuples(st.sampled_from(["now() +", "now() -", "now() + days(1) -"]), durations).map(
            " ".join
        ),
    )
    other = st.one_of(base, st.tuples(base, st.sampled_from("+-"), durations).map(" ".join))
    operators = st.sampled_from(["==", "!=", "<", "<=", ">", ">="])
    comparisons = st.one_of(
        st.tuples(clock, operators, other).map(" ".join),
        st.tuples(other, operators, clock).map(" ".join),
    )
    return st.recursive(
        comparisons,
        lambda inner: st.one_of(
            st.tuples(inner, st.sampled_from(["and", "or"]), inner).map(
                "({0[0]} {0[1]} {0[2]})".format
            ),
            inner.map("not ({})".format),
        ),
        max_leaves=4,
    )


@pytest.mark.fuzz
@settings(
    max_examples=120,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.one_of(_clock_rules(), _expressions().map(lambda generated: generated[1])))
def test_no_verdict_changes_before_its_first_moment(catalogue, text):
    """For generated filters: evaluated at later times before an item's first moment, the
    verdict on the item is the one at the start (what lets a kept list trust it)."""
    try:
        rule = rules.parse(text, "filter", SCHEMA)
        rules.to_sql(rule, now=NOW, **BINDINGS)
        clock = rules.clock(rule, now=NOW, **BINDINGS)
    except rules.RuleError:
        return
    if not clock.settled:
        return
    with transaction.atomic():
        first = first_moments(clock, NOW)

        def verdicts(at: datetime) -> dict[str, bool | None]:
            sql, params = rules.to_sql(rule, now=at, **BINDINGS)
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT external_id, ({sql}) FROM recommender_item", params)
                return dict(cursor.fetchall())

        start = verdicts(NOW)
        for fraction in (0.001, 0.5, 0.999):
            at = {
                item: NOW + (moment - NOW) * fraction if moment else NOW + timedelta(days=3650)
                for item, moment in first.items()
            }
            for moment in set(at.values()):
                later = verdicts(moment)
                for item in (item for item, when in at.items() if when == moment):
                    assert later[item] == start[item], (text, item, first[item], moment)
