"""Answer extraction, normalisation and scoring (no models, no data)."""

from __future__ import annotations

import re

import pytest

from latentreason.builtins.evaluators import BUILTIN_EVALUATORS
from latentreason.builtins.evaluators.choice import ChoiceEvaluator
from latentreason.builtins.evaluators.number import NumberEvaluator
from latentreason.builtins.evaluators.yesno import YesNoEvaluator
from latentreason.components.answers import (
    BOXED_PATTERN,
    answers_equal,
    boxed_text,
    clean_latex,
    evaluate_arithmetic,
    flexible_answer,
    last_boxed,
    last_choice,
    last_number,
    last_yesno,
    normalize_choice,
    normalize_yesno,
    numbers_equal,
    parse_number,
    strict_answer,
)
from latentreason.components.example import Example

AQUA_CHOICES = ("A) 5(√3 + 1)", "B) 6", "C) 125", "D) 8", "E) None of these")
DATE_CHOICES = ("A) 04/29/2021", "B) 06/12/2021", "C) 02/23/2021", "D) 03/11/2021", "E) 05/01/2021", "F) 05/09/2021")


@pytest.mark.parametrize(
    ("text", "content"),
    [
        (r"The final answer is \boxed{18}.", "18"),
        (r"\boxed {42}", "42"),
        (r"so $\boxed{7}$", "7"),
        (r"\boxed{\frac{1}{2}}", r"\frac{1}{2}"),
        (r"\boxed{1} and later \boxed{2}", "2"),
        (r"\boxed{3} then an unfinished \boxed{4", "3"),
        (r"\boxed{5} then an empty \boxed{}", "5"),
        (r"\fbox{C}", "C"),
        (r"\boxed{\boxed{9}}", "9"),
        ("no box at all", None),
        (r"\boxed{", None),
    ],
)
def test_last_boxed(text: str, content: str | None) -> None:
    assert last_boxed(text) == content


@pytest.mark.parametrize(
    ("text", "complete"),
    [
        (r"The final answer is \boxed{18}", True),
        (r"\boxed {B}", True),
        (r"\boxed{\frac{1}{2}}", True),
        (r"\boxed{\text{\$1{,}234}}", True),
        (r"The final answer is \boxed{1", False),
        (r"\boxed{}", False),
        (r"The final answer is", False),
    ],
)
def test_boxed_pattern_marks_complete_answers(text: str, complete: bool) -> None:
    assert bool(re.search(BOXED_PATTERN, text)) is complete


@pytest.mark.parametrize(
    ("evaluator", "text", "complete"),
    [
        (NumberEvaluator, r"The final answer is \boxed{18}", True),
        (NumberEvaluator, r"\boxed{\frac{1}{2}}", True),
        (NumberEvaluator, r"\boxed{\text{\$1{,}234}}", True),
        (NumberEvaluator, r"\boxed{\text{\$}18}", True),
        (NumberEvaluator, r"\boxed{X} so far, then \boxed{7}", True),
        (NumberEvaluator, r"The final answer is \boxed{X}", False),
        (NumberEvaluator, r"\boxed{\text{answer}}", False),
        (NumberEvaluator, r"\boxed {B}", False),
        (NumberEvaluator, r"The final answer is \boxed{1", False),
        (NumberEvaluator, r"\boxed{}", False),
        (ChoiceEvaluator, r"\boxed {B}", True),
        (ChoiceEvaluator, r"\boxed{(C)}", True),
        (ChoiceEvaluator, r"\boxed{125}", True),
        (ChoiceEvaluator, r"\boxed{\text{None of these}}", True),
        (ChoiceEvaluator, r"\boxed{Xylophone}", True),
        (ChoiceEvaluator, r"The final answer is \boxed{X}.", False),
        (ChoiceEvaluator, r"\boxed{\text{X}}", False),
        (ChoiceEvaluator, r"\boxed{ your answer }", False),
        (ChoiceEvaluator, r"\boxed{Answer}", False),
        (ChoiceEvaluator, r"\boxed{}", False),
        (ChoiceEvaluator, r"\boxed{B", False),
        (YesNoEvaluator, r"\boxed{Yes}", True),
        (YesNoEvaluator, r"\boxed{\text{No}}", True),
        (YesNoEvaluator, r"\boxed{True}", True),
        (YesNoEvaluator, r"\boxed{\textbf{false}.}", True),
        (YesNoEvaluator, r"The final answer is \boxed{X}.", False),
        (YesNoEvaluator, r"\boxed{your answer}", False),
        (YesNoEvaluator, r"\boxed{18}", False),
        (YesNoEvaluator, r"\boxed{Yesterday}", False),
        (YesNoEvaluator, r"\boxed{No", False),
    ],
)
def test_answer_complete_needs_an_answer_of_the_right_kind(evaluator: type, text: str, complete: bool) -> None:
    assert evaluator.answer_complete is not None
    assert bool(evaluator.answer_complete.search(text)) is complete


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        (r"The final answer is \boxed{18}.", "18"),
        (r"\boxed {42}", "42"),
        (r"$\boxed{7}$", "7"),
        (r"\boxed{\$1,234.50}", "1234.5"),
        (r"\boxed{1,234}", "1234"),
        (r"\boxed{1{,}000}", "1000"),
        (r"\boxed{\text{\$1{,}234}}", "1234"),
        (r"\boxed{\frac{3}{4}}", "0.75"),
        (r"\boxed{\dfrac{1}{4}}", "0.25"),
        (r"\boxed{3/4}", "0.75"),
        (r"\boxed{x = -5}", "-5"),
        (r"\boxed{-3.0}", "-3"),
        (r"\boxed{18 \text{ dollars}}", "18"),
        (r"\boxed{5kg}", "5"),
        (r"\boxed{50\%}", "50"),
        (r"\boxed{90^\circ}", "90"),
        (r"\boxed{.5}", "0.5"),
        (r"\boxed{18.}", "18"),
        (r"\boxed{18.00}", "18"),
        (r"\boxed{10\,000}", "10000"),
        (r"\boxed{Bob}", "Bob"),
        ("The final answer is 18.", None),
        (r"The final answer is \boxed{18", None),
    ],
)
def test_strict_number(text: str, answer: str | None) -> None:
    assert strict_answer(text, "number") == answer


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("She makes 9 * 2 = $18 every day at the farmer's market.", "18"),
        ("Janet sells 16 - 3 - 4 = 9 duck eggs a day.", "9"),
        ("16-3-4=9", "9"),
        ("Total is 1,234 apples", "1234"),
        ("12,345,678 people live there", "12345678"),
        ("It costs $5.", "5"),
        ("It costs $ 5", "5"),
        ("The temperature is -7 degrees", "-7"),
        ("He owes \u22124 dollars", "-4"),
        ("She buys 5kg of rice", "5"),
        ("That is 12 dollars", "12"),
        ("She ate 3/4 of the cake", "0.75"),
        ("The answer is 18.", "18"),
        ("x = 0.5.", "0.5"),
        ("so 25% of them", "25"),
        ("numbers 1,2,3", "3"),
        ("1,2345", "2345"),
        ("It took 2.5 hours.\n\nSo she needs 3 more.", "3"),
        (r"The final answer is \boxed{72}.", "72"),
        (r"\boxed{72} apples in 2 baskets", "72"),
        ("there is no number here", None),
    ],
)
def test_flexible_number(text: str, answer: str | None) -> None:
    assert flexible_answer(text, "number") == answer


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("The area is 150 m^2", "150"),
        ("The area is 150 cm\u00b2", "150"),
        (r"It holds 12 \text{ cm}^{3} of water", "12"),
        ("x^2 = 16 m^2", "16"),
        (r"\boxed{150\text{ ft}^2}", "150"),
        (r"\boxed{150 \text{ m}^{2}}", "150"),
        (r"\boxed{12\ \mathrm{cm}^3}", "12"),
        (r"\boxed{2.5 \text{ m}^{-2}}", "2.5"),
    ],
)
def test_the_power_of_a_unit_is_not_the_answer(text: str, answer: str) -> None:
    assert flexible_answer(text, "number") == answer


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        (r"\boxed{36 \div 2}", "18"),
        (r"\boxed{4\times5}", "20"),
        (r"\boxed{2^{10}}", "1024"),
        (r"\boxed{(3 + 4) \cdot 2}", "14"),
        ("\\boxed{3 \u00d7 4 \u00f7 2}", "6"),
        (r"\boxed{\frac{1+2}{3}}", "1"),
        (r"\boxed{\frac{10}{2+3}}", "2"),
        (r"\boxed{\frac{36}{2} + 3}", "21"),
        (r"\boxed{-2^2}", "-4"),
        (r"\boxed{7 \times 10^{-2}}", "0.07"),
        (r"\boxed{x = 36 \div 2}", "18"),
        (r"\boxed{16 - 3 = 13}", "13"),
        (r"\boxed{x = 5}", "5"),
        (r"\boxed{-3}", "-3"),
        (r"\boxed{1,234}", "1234"),
        (r"\boxed{\$18.00}", "18"),
        (r"\boxed{-\frac{1}{2}}", "-0.5"),
        (r"\boxed{5-10}", "10"),
        (r"\boxed{04/29/2021}", "4"),
    ],
)
def test_strict_number_evaluates_arithmetic(text: str, answer: str) -> None:
    assert strict_answer(text, "number") == answer


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("36 \\div 2", 18),
        ("2^{10}", 1024),
        ("2^3^2", 512),
        ("((1))", 1),
        ("1/3 + 1/6", 0.5),
        ("\u22123", -3),
        ("1,234", 1234),
    ],
)
def test_evaluate_arithmetic(text: str, value: float) -> None:
    assert evaluate_arithmetic(text) == pytest.approx(value)


@pytest.mark.parametrize(
    "text",
    [
        "3:2",
        "5-10",
        "04/29/2021",
        "1/0",
        "0^{-1}",
        "2^{0.5}",
        "2^{100000}",
        "x + 1",
        "3 apples",
        "(1 + 2",
        "1 2",
        "",
        "1 + " + "(" * 200 + "1" + ")" * 200,
    ],
)
def test_evaluate_arithmetic_refuses_what_is_not_arithmetic(text: str) -> None:
    assert evaluate_arithmetic(text) is None


def test_clean_latex_brackets_fraction_parts_with_operators() -> None:
    assert clean_latex(r"\frac{1+2}{3}") == "(1+2)/3"
    assert clean_latex(r"\frac{-1}{2}") == "-1/2"
    assert clean_latex(r"\dfrac{\text{3}}{4}") == "3/4"


@pytest.mark.parametrize(
    ("text", "content"),
    [
        (r"The final answer is \boxed{X}.", None),
        (r"\boxed{\text{your answer}}", None),
        (r"\boxed{the final answer}", None),
        (r"\boxed{18}. The final answer is \boxed{X}.", "18"),
        (r"\boxed{x = 5}", "x = 5"),
    ],
)
def test_last_boxed_skips_the_placeholder(text: str, content: str | None) -> None:
    assert last_boxed(text) == content


def test_placeholder_box_is_not_an_answer() -> None:
    text = r"So she has 7 apples left. The final answer is \boxed{X}."
    assert strict_answer(text, "number") is None and boxed_text(text) is None
    assert flexible_answer(text, "number") == "7"
    text = r"So the answer is (C). The final answer is \boxed{X}."
    assert strict_answer(text, "choice", AQUA_CHOICES) is None
    assert flexible_answer(text, "choice", AQUA_CHOICES) == "C"
    text = r"Pigs have no wings, so no. The final answer is \boxed{answer}."
    assert strict_answer(text, "yesno") is None and flexible_answer(text, "yesno") == "No"
    score = NumberEvaluator(NumberEvaluator.Options()).score(
        r"She has 7. The final answer is \boxed{X}.", Example(id="1", question="q", answer="Mrs. Hilt")
    )
    assert score.strict is None and score.flexible == "7"


@pytest.mark.parametrize(
    ("text", "answer"),
    [("It was 04/29/2021", "4"), ("version 1.2.3", "1.2"), ("no digits", None), ("1e", "1")],
)
def test_last_number_edge_cases(text: str, answer: str | None) -> None:
    assert last_number(text) == answer


@pytest.mark.parametrize(
    ("text", "value"),
    [("18", 18), ("$1,234.50", 1234.5), ("-3", -3), (".5", 0.5), ("50%", 50), ("3/4", 0.75), ("18.", 18)],
)
def test_parse_number_reads_single_numbers(text: str, value: float) -> None:
    assert parse_number(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["5; 15; 20", "3:4", "Bob", "12 apples and 3 pears", "", "1/0"])
def test_parse_number_rejects_non_numbers(text: str) -> None:
    assert parse_number(text) is None


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        ("18.00", "18", True),
        ("1,234", "1234", True),
        ("-3", "-3.0", True),
        ("0.5", ".5", True),
        ("$18", "18", True),
        ("3/4", "0.75", True),
        ("0.3333333333333333", "1/3", True),
        ("18", "19", False),
        ("18", "-18", False),
        ("Bob", "bob", True),
        ("Bob", "Alice", False),
        ("5; 15; 20", "20", False),
    ],
)
def test_numbers_equal(a: str, b: str, equal: bool) -> None:
    assert numbers_equal(a, b) is equal
    assert numbers_equal(b, a) is equal


def test_numbers_equal_tolerance() -> None:
    assert numbers_equal("33.3333", "33.33333333", rel_tol=1e-4)
    assert not numbers_equal("33.3333", "33.33333333", rel_tol=1e-9)


@pytest.mark.parametrize(
    ("text", "letter"),
    [
        (r"The final answer is \boxed{B}.", "B"),
        (r"\boxed{\text{B}}", "B"),
        (r"\boxed{\textbf{(D)}}", "D"),
        (r"\boxed{B) 6}", "B"),
        (r"\boxed{(C)}", "C"),
        (r"\boxed{b}", "B"),
        (r"\boxed{e)}", "E"),
        (r"\boxed{Option D}", "D"),
        (r"\boxed{125}", "C"),
        (r"\boxed{125.0}", "C"),
        (r"\boxed{None of these}", "E"),
        (r"\boxed{F}", None),
        (r"\boxed{17}", None),
        ("The answer is C.", None),
    ],
)
def test_strict_choice(text: str, letter: str | None) -> None:
    assert strict_answer(text, "choice", AQUA_CHOICES) == letter


def test_strict_choice_uses_the_options_letters() -> None:
    assert strict_answer(r"\boxed{F}", "choice", DATE_CHOICES) == "F"
    assert strict_answer(r"\boxed{05/01/2021}", "choice", DATE_CHOICES) == "E"
    assert normalize_choice("E") == "E"
    assert normalize_choice("F") is None


@pytest.mark.parametrize(
    ("text", "letter"),
    [
        ("A car is driven towards a tower. The answer is (C).", "C"),
        ("A car is driven towards a tower.", None),
        ("So the answer is C) 125", "C"),
        ("I pick option D", "D"),
        ("Therefore the answer is **E**", "E"),
        ("The answer is B because 6 is even.", "B"),
        ("So C is correct.", "C"),
        ("Answer: A", "A"),
        ("Thus the answer is A.", "A"),
        ("answer is (d)", "D"),
        ("Options A and B are wrong, the answer is D.", "D"),
        ("The correct answer is: 125", "C"),
        ("Speed = 60 * 540 = 32400\nCorrect answer - A", "A"),
        ("Profit = 125\nAnswer is A.", "A"),
        ("D. 8", "D"),
        ("none of the letters apply here", None),
        (r"Hence \boxed{B}. A note follows.", "B"),
    ],
)
def test_flexible_choice(text: str, letter: str | None) -> None:
    assert flexible_answer(text, "choice", AQUA_CHOICES) == letter


@pytest.mark.parametrize(
    ("text", "letter"),
    [
        ("A and B can finish the work in 10 days.", None),
        ("C is 5 years older, so the total is 45.", None),
        ("A, B and C can do it in 6 days", None),
        ("Let A = 5 and B = 3.", None),
        ("A and B can finish the work in 10 days, so the answer is (C).", "C"),
        ("The answer is C. A and B can finish it in 10 days.", "C"),
        ("C is the correct answer.", "C"),
        ("So option B.", "B"),
    ],
)
def test_flexible_choice_ignores_letters_used_as_names(text: str, letter: str | None) -> None:
    assert flexible_answer(text, "choice", AQUA_CHOICES) == letter


def test_last_choice_ignores_letters_beyond_the_options() -> None:
    assert last_choice("The answer is F.", AQUA_CHOICES) is None
    assert last_choice("The answer is F.", DATE_CHOICES) == "F"
    assert last_choice("So the date is 05/01/2021.", DATE_CHOICES) == "E"
    assert last_choice("The answer is C.") == "C"


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        (r"The final answer is \boxed{Yes}.", "Yes"),
        (r"\boxed{\text{No}}", "No"),
        (r"\boxed{no.}", "No"),
        (r"\boxed{YES}", "Yes"),
        (r"\boxed{Yes, it is}", "Yes"),
        (r"\boxed{Maybe}", None),
        ("So the answer is yes.", None),
    ],
)
def test_strict_yesno(text: str, answer: str | None) -> None:
    assert strict_answer(text, "yesno") == answer


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("Frost is common in December. So the answer is yes.", "Yes"),
        ("No one knows for sure. Thus, NO", "No"),
        ("Yes, llamas gestate 11 months, so no.", "No"),
        (r"\boxed{Yes}", "Yes"),
        ("nothing known about it", None),
        ("Yesterday it rained", None),
    ],
)
def test_flexible_yesno(text: str, answer: str | None) -> None:
    assert flexible_answer(text, "yesno") == answer


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        (r"\boxed{True}", "Yes"),
        (r"\boxed{False}", "No"),
        (r"\boxed{\text{True}}", "Yes"),
        (r"\boxed{true.}", "Yes"),
        (r"\boxed{\textbf{FALSE}}", "No"),
    ],
)
def test_strict_yesno_reads_true_and_false(text: str, answer: str) -> None:
    assert strict_answer(text, "yesno") == answer
    evaluator = YesNoEvaluator(YesNoEvaluator.Options())
    assert evaluator.score(text, Example(id="1", question="q", answer=answer)).strict_correct


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("No one knows whether pigs can fly.", None),
        ("There is no evidence that llamas fly", None),
        ("It is yes and no.", None),
        ("The answer is yes. No one doubts it.", "Yes"),
        ("So, yes. There is no evidence against it.", "Yes"),
        ("Yes. No matter how you count, it holds.", "Yes"),
        ("Yes, it lasts. It is no longer than a year.", "Yes"),
        ("Yes: see No. 5 in the list.", "Yes"),
        ("No, because pigs have no wings.", "No"),
        ("So no, pigs cannot fly.", "No"),
        ("Answer: **No**", "No"),
        ("Hence the answer is true, as shown.", "Yes"),
        ("Can it? No\nIt cannot.", "No"),
    ],
)
def test_flexible_yesno_ignores_other_uses_of_yes_and_no(text: str, answer: str | None) -> None:
    assert flexible_answer(text, "yesno") == answer


def test_normalize_and_last_yesno() -> None:
    assert normalize_yesno("  yes") == "Yes"
    assert normalize_yesno("nope") is None
    assert last_yesno("Yes or no? no") == "No"


@pytest.mark.parametrize(
    ("predicted", "gold", "answer_type", "equal"),
    [
        ("18", "18", "number", True),
        ("18.0", "18", "number", True),
        (None, "18", "number", False),
        ("b", "B", "choice", True),
        ("C", "B", "choice", False),
        ("yes", "Yes", "yesno", True),
        ("No", "Yes", "yesno", False),
    ],
)
def test_answers_equal(predicted: str | None, gold: str, answer_type: str, equal: bool) -> None:
    assert answers_equal(predicted, gold, answer_type) is equal  # type: ignore[arg-type]


def test_builtin_evaluators_are_registered() -> None:
    expected = {"number": NumberEvaluator, "choice": ChoiceEvaluator, "yesno": YesNoEvaluator}
    assert expected == BUILTIN_EVALUATORS


def test_number_evaluator_scores() -> None:
    evaluator = NumberEvaluator(NumberEvaluator.Options())
    example = Example(id="1", question="q", answer="1234")
    score = evaluator.score(r"So it costs $1,234.00. The final answer is \boxed{\$1,234}.", example)
    assert (score.strict, score.flexible, score.strict_correct, score.flexible_correct) == ("1234", "1234", True, True)
    score = evaluator.score("So it costs 1,234 dollars.", example)
    assert (score.strict, score.flexible, score.strict_correct, score.flexible_correct) == (None, "1234", False, True)
    score = evaluator.score(r"\boxed{12}", example)
    assert not score.strict_correct and not score.flexible_correct


@pytest.mark.parametrize(
    ("generation", "gold", "strict", "correct"),
    [
        (r"The final answer is \boxed{3:30 p.m.}.", "3:30 p.m.", "3:30 p.m.", True),
        (r"The final answer is \boxed{\text{Mrs. Hilt}}", "Mrs. Hilt", "Mrs. Hilt", True),
        (r"\boxed{9; 11}", "9; 11", "9; 11", True),
        (r"\boxed{11}", "9; 11", "11", False),
        ("Mrs. Hilt has more.", "Mrs. Hilt", None, False),
    ],
)
def test_number_evaluator_non_numeric_gold(generation: str, gold: str, strict: str | None, correct: bool) -> None:
    score = NumberEvaluator(NumberEvaluator.Options()).score(generation, Example(id="1", question="q", answer=gold))
    assert score.strict == strict and score.strict_correct is correct


def test_boxed_text() -> None:
    assert boxed_text(r"so \boxed{\text{Mrs. Hilt}}.") == "Mrs. Hilt"
    assert boxed_text(r"\boxed{\$5}") == "$5"
    assert boxed_text("none") is None


def test_number_evaluator_tolerance_option() -> None:
    example = Example(id="1", question="q", answer="0.3333")
    loose = NumberEvaluator(NumberEvaluator.Options(rel_tol=1e-3))
    strict = NumberEvaluator(NumberEvaluator.Options())
    assert loose.score(r"\boxed{1/3}", example).strict_correct
    assert not strict.score(r"\boxed{1/3}", example).strict_correct


def test_choice_evaluator_scores() -> None:
    evaluator = ChoiceEvaluator(ChoiceEvaluator.Options())
    example = Example(id="1", question="q", answer="C", choices=AQUA_CHOICES)
    assert evaluator.score(r"The final answer is \boxed{C}.", example).strict_correct
    assert evaluator.score(r"The final answer is \boxed{125}.", example).strict_correct
    score = evaluator.score("A car moves... so the answer is (C)", example)
    assert score.strict is None and score.flexible == "C" and score.flexible_correct
    assert not evaluator.score(r"\boxed{A}", example).flexible_correct


def test_yesno_evaluator_scores() -> None:
    evaluator = YesNoEvaluator(YesNoEvaluator.Options())
    example = Example(id="1", question="q", answer="No")
    assert evaluator.score(r"The final answer is \boxed{No}.", example).strict_correct
    score = evaluator.score("Llamas gestate for 11 months, so no.", example)
    assert score.strict is None and score.flexible_correct
    assert not evaluator.score(r"\boxed{Yes}", example).flexible_correct
