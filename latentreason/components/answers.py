"""Answer extraction and normalisation for the three answer types.

Everything here is a pure function of strings, used by the evaluators and
testable without a model.

Two extractions are made from a generation:

* **strict**: the content of the last complete ``\\boxed{...}``, the format the
  task instructions ask for, normalised for the answer type; None if there is
  no such box. A box that only repeats the instructions' placeholder
  (``\\boxed{X}``, ``\\boxed{answer}``) is not an answer and is skipped. A
  box holding a simple arithmetic expression (``\\boxed{36 \\div 2}``) gives
  its exact value.
* **flexible**: the strict answer if there is one, otherwise the last answer of
  the right kind anywhere in the text (the last number, the last standalone
  option letter or option text, the last yes/no said as an answer). So a
  flexible answer exists whenever a strict one does, and they then agree.

Normalised forms: numbers as in the datasets (no thousands separators, no
trailing ``.0``: ``"1234"``, ``"0.5"``, ``"-3"``); options as an upper-case
letter; yes/no as ``"Yes"`` or ``"No"``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from fractions import Fraction

from latentreason.components.example import AnswerType


def _balanced(depth: int, required: str | None = None) -> str:
    """Regular expression source for text whose braces balance and nest at most ``depth`` deep.

    Args:
        depth: how many levels of ``{...}`` may nest inside the text.
        required: if given, the text must contain a match of this source (a
            single character class, such as ``\\d``) at some level.

    Returns:
        The source text, without anchors.
    """
    if depth == 0:
        return r"[^{}]*" if required is None else rf"[^{{}}]*?{required}[^{{}}]*"
    atom = rf"(?:[^{{}}]|\{{{_balanced(depth - 1)}\}})"
    if required is None:
        return atom + "*"
    return rf"{atom}*?(?:{required}|\{{{_balanced(depth - 1, required)}\}}){atom}*"


# What the instructions put in the box as a stand-in for the answer: "X",
# "answer", "your final answer", possibly inside \text{...}.
_PLACEHOLDER = r"\s*(?:\\[A-Za-z]+\s*\{\s*)*(?i:x|(?:(?:your|the)\s+)?(?:final\s+)?answer)[\s.}]*"

#: A regular expression (source text) that matches a complete, non-empty
#: ``\boxed{...}`` whose content nests braces at most two levels deep, e.g.
#: ``\boxed{\text{\$1{,}234}}``.
BOXED_PATTERN = rf"\\boxed\s*\{{(?=\s*[^\s}}]){_balanced(2)}\}}"

#: Like :data:`BOXED_PATTERN`, for a box that holds at least one digit.
#: Generation of a numeric answer can stop once it matches.
NUMBER_BOXED_PATTERN = r"\\boxed\s*\{" + _balanced(2, r"\d") + r"\}"

#: Like :data:`BOXED_PATTERN`, for a box that holds something other than the
#: instructions' placeholder (``\boxed{X}``). Generation of an option can stop
#: once it matches.
CHOICE_BOXED_PATTERN = rf"\\boxed\s*\{{(?=\s*[^\s}}])(?!{_PLACEHOLDER}\}}){_balanced(2)}\}}"

#: Like :data:`BOXED_PATTERN`, for a box whose content starts with yes, no,
#: true or false (``\boxed{\text{No}}``). Generation of a yes/no answer can
#: stop once it matches.
YESNO_BOXED_PATTERN = rf"\\boxed\s*\{{(?=(?:\\[A-Za-z]+\s*\{{|[^\w}}])*(?i:yes|no|true|false)\b){_balanced(2)}\}}"

_BOX_START = re.compile(r"\\(?:boxed|fbox)\s*\{")
_PLACEHOLDER_ONLY = re.compile(_PLACEHOLDER)

_WRAPPER = re.compile(r"\\(?:text|textbf|textit|textrm|mathrm|mathbf|mathit|mbox|operatorname)\s*\{([^{}]*)\}")
_FRAC = re.compile(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")
# An operator after something, so a part of a fraction that needs brackets
# ("1+2", not "-1").
_INNER_OPERATOR = re.compile(r"\S\s*(?:[-+*/^\u2212\u00d7\u00f7\u00b7]|\\(?:times|div|cdot)(?![A-Za-z]))")
_LATEX_SUBSTITUTIONS = (
    (re.compile(r"\{,\}"), ","),
    (re.compile(r"\\[,!]"), ""),
    (re.compile(r"\\(?:[;: ]|quad|qquad)"), " "),
    (re.compile(r"\^\s*\{?\\circ\}?"), ""),
    (re.compile(r"\\(?:left|right)\b"), ""),
    (re.compile(r"\\([$%])"), r"\1"),
)

# Digits with optional thousands separators and decimals: "1,234.5", ".5".
_DIGITS = r"(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|\.\d+"
# One number: an optional sign attached to it, an optional dollar sign, the
# digits, and an optional "/denominator" (a fraction). Not glued to a
# preceding word, decimal point or slash, so "16-3" reads as 16 and 3 and the
# parts of "04/29/2021" are not taken as fractions.
_NUMBER = re.compile(
    r"(?<![\w./])"
    r"(?P<sign>[-\u2212])?"
    r"\$?"
    rf"(?P<num>{_DIGITS})"
    r"(?:\s*/\s*(?P<den>\d+(?:\.\d+)?)(?![\d/]))?"
)
# The power of a unit ("m^2", "ft^{3}"), which is not a number of the answer.
_UNIT_POWER = re.compile(r"(?<=[A-Za-z])\s*\^\s*(?:\{\s*-?\d+\s*\}|-?\d+)")
# One token of an arithmetic expression: a number, an operator or a bracket.
_ARITHMETIC_TOKEN = re.compile(
    rf"\s*(?:(?P<number>{_DIGITS})|(?P<op>\\(?:div|times|cdot)(?![A-Za-z])|[-+*/^(){{}}\u2212\u00d7\u00f7\u00b7]))"
)
_OPERATORS = {"\\div": "/", "\u00f7": "/", "\\times": "*", "\u00d7": "*", "\\cdot": "*", "\u00b7": "*", "\u2212": "-"}
_BRACKETS = {"(": ")", "{": "}"}
# A hyphen or slashes between digits: a range or a date ("5-10", "04/29/2021"), not arithmetic.
_RANGE_OR_DATE = re.compile(r"\d-\d|\d/\d+/")
# Limits that keep evaluating a box cheap: tokens (so also bracket depth) and
# the size of a power's result.
_MAX_ARITHMETIC_TOKENS = 100
_MAX_POWER_BITS = 4096
_NUMBER_ONLY = re.compile(r"\s*(?:[-\u2212])?\$?\s*[\d.,]+(?:\s*/\s*[\d.]+)?\s*%?\s*\.?\s*")

_DEFAULT_LETTERS = "ABCDE"
_OPTION_PREFIX = re.compile(r"\s*\(?([A-Za-z])\)\s*")
_CHOICE_ALONE = re.compile(
    r"(?i:(?:the\s+)?(?:correct\s+)?(?:option|choice|answer)\s*(?:is)?\s*[:\-]?\s*)?"
    r"[(\[]?(?:(?P<upper>[A-Z])|(?P<lower>[a-z])(?=[)\]]|\s*$))[)\]]?"
    r"(?=$|[\s.,:;)\]*])"
)
# Candidates for the last option letter in free text, each with one group.
_CHOICE_CANDIDATES = (
    re.compile(r"[(\[]([A-Z])[)\]]"),  # (C) or [C]
    re.compile(r"(?<![A-Za-z'])([A-Z])\)"),  # C)
    re.compile(r"(?i:\b(?:option|choice|answer)(?:\s+is)?)\s*[:\-]?\s*\(?([A-Z])(?![A-Za-z'])"),  # answer is C
    re.compile(r"(?i:\b(?:option|choice|answer)(?:\s+is)?)\s*[:\-]?\s*\(([a-z])\)"),  # answer is (c)
    # a bare C, but not one followed by a lower-case word (the article in
    # "A car is ...", a person or variable in "A and B can ...", "C is 5 years
    # older") unless the words call the letter the answer ("C is correct"),
    # nor one in a formula ("A = 5") or a list of names ("A, B and C")
    re.compile(
        r"(?<![A-Za-z'])([A-Z])(?![A-Za-z'])"
        r"(?!\s+(?!(?:(?:is|was|seems(?:\s+to\s+be)?|must\s+be)\s+(?:the\s+)?(?:correct|right|answer|best)"
        r"|fits|matches)\b)[a-z])"
        r"(?!\s*[=+^<>])(?!,\s*[A-Z](?![A-Za-z']))"
    ),
)
# Yes/no said as an answer, each with one group: after "answer is"; at the
# start of a sentence or after "so", followed by punctuation ("Yes, ...",
# "So no, ..."); or ending a sentence or line ("..., so no."). Not "No. 5",
# nor either word of "yes and no" / "yes or no", nor one used as a
# determiner ("no one", "no evidence", "no longer").
_YES_NO_CANDIDATES = (
    re.compile(
        r"(?i)\banswer\b(?:\s+(?:is|would\s+be|should\s+be|will\s+be))?\s*[:=-]?\s*[*_\"'`(\[]*"
        r"(yes|no|true|false)\b(?!\s+(?:and|or)\s+(?:yes|no)\b)"
    ),
    re.compile(
        r"(?im)(?:^|(?<=[.!?:])\s+|\b(?:so|thus|therefore|hence)\b,?\s+)[*_\"'`(\[]*"
        r"(yes|no)\b(?=[*_\"'`)\]]*(?:[,;:!]|\.(?![ \t]*\d)))"
    ),
    re.compile(r"(?im)(?<![\w/])(?<!yes and )(?<!yes or )(yes|no)\b(?=[*_\"'`)\]]*(?:[.!?](?![ \t]*\d)|[ \t]*$))"),
)
_YES_NO_START = re.compile(r"\W*(yes|no|true|false)\b", re.IGNORECASE)
_YES_NO_VALUES = {"yes": "Yes", "true": "Yes", "no": "No", "false": "No"}
_TRAILING = " \t\r\n.!*\"'`$)"


def last_boxed(text: str) -> str | None:
    """The content of the last complete, non-empty ``\\boxed{...}`` (or ``\\fbox{...}``).

    Braces inside are matched, so ``\\boxed{\\frac{1}{2}}`` gives
    ``\\frac{1}{2}``; a box left open at the end of the text, an empty one,
    and one that only repeats the instructions' placeholder
    (``\\boxed{X}``, ``\\boxed{\\text{your answer}}``) are ignored.

    Args:
        text: a generation.

    Returns:
        The raw content, stripped, or None if there is no complete box.
    """
    found = None
    for start in _BOX_START.finditer(text):
        depth = 1
        for pos in range(start.end(), len(text)):
            if text[pos] == "{":
                depth += 1
            elif text[pos] == "}":
                depth -= 1
                if depth == 0:
                    content = text[start.end() : pos].strip()
                    if content and not _PLACEHOLDER_ONLY.fullmatch(content):
                        found = content
                    break
    return found


def clean_latex(text: str) -> str:
    """Undo the LaTeX that commonly wraps an answer.

    ``\\text{..}``-style wrappers are unwrapped, ``\\frac{a}{b}`` becomes
    ``a/b`` (``(a+1)/b`` when a part holds an operator), ``\\$`` and ``\\%``
    lose their backslash, ``{,}`` becomes ``,``, thin spaces are dropped and
    ``^\\circ`` is removed.

    Args:
        text: any text.

    Returns:
        The text with those constructs replaced.
    """
    previous = None
    while previous != text:
        previous = text
        text = _WRAPPER.sub(r"\1", text)
        text = _FRAC.sub(_fraction, text)
    for pattern, replacement in _LATEX_SUBSTITUTIONS:
        text = pattern.sub(replacement, text)
    return text


def _fraction(match: re.Match[str]) -> str:
    parts = (f"({part})" if _INNER_OPERATOR.search(part) else part for part in match.groups())
    return "/".join(parts)


def _unbraced(text: str) -> str:
    return clean_latex(text).replace("{", "").replace("}", "")


def _value(match: re.Match[str]) -> Fraction | None:
    value = Fraction(match["num"].replace(",", ""))
    if match["den"] is not None:
        denominator = Fraction(match["den"])
        if denominator == 0:
            return None
        value /= denominator
    return -value if match["sign"] else value


def _numbers(text: str) -> list[Fraction]:
    values = (_value(m) for m in _NUMBER.finditer(_UNIT_POWER.sub("", clean_latex(text))))
    return [v for v in values if v is not None]


def evaluate_arithmetic(text: str) -> Fraction | None:
    """The exact value of a simple arithmetic expression such as boxed content.

    Numbers (``1,234``, ``.5``) combine with ``+ - * /``, ``\\times``,
    ``\\div``, ``\\cdot``, ``\u00d7``, ``\u00f7``, brackets, ``\\frac{a}{b}`` and
    whole powers (``2^{10}``); ``-2^2`` is -4. Without ``eval``: the text is
    tokenised and parsed here, and a power too large to write is refused.

    Args:
        text: the expression, LaTeX allowed (``36 \\div 2``).

    Returns:
        The value, or None if the text is not such an expression: words,
        units, an ``=``, a ratio (``3:2``), a range or date (``5-10``,
        ``04/29/2021``), a division by zero.
    """
    cleaned = clean_latex(text).strip()
    tokens: list[str | Fraction] = []
    pos = 0
    while pos < len(cleaned):
        token = _ARITHMETIC_TOKEN.match(cleaned, pos)
        if token is None or len(tokens) == _MAX_ARITHMETIC_TOKENS:
            return None
        if token["number"] is not None:
            tokens.append(Fraction(token["number"].replace(",", "")))
        else:
            tokens.append(_OPERATORS.get(token["op"], token["op"]))
        pos = token.end()
    if not tokens or _RANGE_OR_DATE.search(cleaned):
        return None
    try:
        value, end = _sum(tokens, 0)
    except (ValueError, ZeroDivisionError):
        return None
    return value if end == len(tokens) else None


# A recursive-descent parser of arithmetic tokens. Each function reads from
# tokens[pos] on and returns the value and the position after it, or raises
# ValueError if the tokens there do not form its part of the grammar.


def _sum(tokens: list[str | Fraction], pos: int) -> tuple[Fraction, int]:
    value, pos = _product(tokens, pos)
    while pos < len(tokens) and tokens[pos] in ("+", "-"):
        right, end = _product(tokens, pos + 1)
        value, pos = (value + right if tokens[pos] == "+" else value - right), end
    return value, pos


def _product(tokens: list[str | Fraction], pos: int) -> tuple[Fraction, int]:
    value, pos = _signed(tokens, pos)
    while pos < len(tokens) and tokens[pos] in ("*", "/"):
        right, end = _signed(tokens, pos + 1)
        value, pos = (value * right if tokens[pos] == "*" else value / right), end
    return value, pos


def _signed(tokens: list[str | Fraction], pos: int) -> tuple[Fraction, int]:
    if pos < len(tokens) and tokens[pos] in ("+", "-"):
        value, end = _signed(tokens, pos + 1)
        return (value if tokens[pos] == "+" else -value), end
    base, pos = _bracketed(tokens, pos)
    if pos < len(tokens) and tokens[pos] == "^":
        exponent, pos = _signed(tokens, pos + 1)
        size = max(base.numerator.bit_length(), base.denominator.bit_length())
        if exponent.denominator != 1 or abs(exponent) * size > _MAX_POWER_BITS:
            raise ValueError("not a whole power of a manageable size")
        base **= int(exponent)
    return base, pos


def _bracketed(tokens: list[str | Fraction], pos: int) -> tuple[Fraction, int]:
    token = tokens[pos] if pos < len(tokens) else ""
    if isinstance(token, Fraction):
        return token, pos + 1
    if token not in _BRACKETS:
        raise ValueError("expected a number or an opening bracket")
    value, end = _sum(tokens, pos + 1)
    if end == len(tokens) or tokens[end] != _BRACKETS[token]:
        raise ValueError("unclosed bracket")
    return value, end + 1


def format_number(value: Fraction) -> str:
    """Write a number in the datasets' form: ``"1234"``, ``"0.75"``, ``"-3"``.

    Args:
        value: the number.

    Returns:
        An integer without separators, or the shortest decimal of the float.
    """
    if value.denominator == 1:
        return str(value.numerator)
    return repr(float(value))


def parse_number(text: str) -> Fraction | None:
    """Read ``text`` as exactly one number.

    Accepts ``"1,234"``, ``"$18.00"``, ``"-3"``, ``".5"``, ``"50%"``,
    ``"3/4"``, ``"\\frac{3}{4}"`` and a trailing full stop; anything with
    words or several numbers gives None.

    Args:
        text: a gold answer or an extracted answer.

    Returns:
        The exact value, or None if the text is not a single number.
    """
    cleaned = _unbraced(text)
    if not _NUMBER_ONLY.fullmatch(cleaned):
        return None
    values = _numbers(cleaned)
    return values[0] if len(values) == 1 else None


def last_number(text: str) -> str | None:
    """The last number in ``text``, normalised.

    Handles signs (``-3``), decimals, thousands separators (``1,234``),
    currency and percent signs, units (``5kg``, ``12 dollars``, ``150 m^2``
    gives ``150``), fractions (``3/4`` gives ``0.75``) and a trailing full
    stop (``18.``).

    Args:
        text: any text.

    Returns:
        The number in normalised form, or None if there is none.
    """
    values = _numbers(text)
    return format_number(values[-1]) if values else None


def numbers_equal(a: str, b: str, rel_tol: float = 1e-6) -> bool:
    """Whether two answers are the same number (``"18.00"`` and ``"18"``).

    Args:
        a: one answer.
        b: the other answer.
        rel_tol: relative tolerance of the comparison.

    Returns:
        True if both are single numbers within ``rel_tol`` of each other, or
        if, not both being numbers, they are the same text up to case,
        spacing and a trailing full stop.
    """
    x, y = parse_number(a), parse_number(b)
    if x is not None and y is not None:
        return x == y or math.isclose(float(x), float(y), rel_tol=rel_tol, abs_tol=1e-12)
    return _plain(a) == _plain(b)


def _plain(text: str) -> str:
    return " ".join(text.split()).rstrip(".").casefold()


def _letters(choices: Sequence[str]) -> str:
    if not choices:
        return _DEFAULT_LETTERS
    return "".join(chr(ord("A") + i) for i in range(len(choices)))


def _option_texts(choices: Sequence[str]) -> list[tuple[str, str]]:
    """``(letter, option text)`` pairs from ``"A) text"`` strings."""
    pairs = []
    for index, choice in enumerate(choices):
        letter = chr(ord("A") + index)
        prefix = _OPTION_PREFIX.match(choice)
        if prefix:
            letter, choice = prefix[1].upper(), choice[prefix.end() :]
        if choice.strip():
            pairs.append((letter, choice.strip()))
    return pairs


def normalize_choice(text: str, choices: Sequence[str] = ()) -> str | None:
    """Read an option letter from a short answer such as boxed content.

    Accepts ``"B"``, ``"(B)"``, ``"B) 12"``, ``"b)"``, ``"\\text{B}"``,
    ``"Option B"``, and also the text of an option (``"12"`` when an option
    is ``"B) 12"``, compared as text or as numbers).

    Args:
        text: the answer text.
        choices: the options, ``"A) ..."``; without them, letters A-E count.

    Returns:
        The upper-case letter, or None if none fits.
    """
    cleaned = _unbraced(text).strip(" \t\n$*\"'")
    letters = {letter for letter, _ in _option_texts(choices)} or set(_letters(choices))
    match = _CHOICE_ALONE.match(cleaned)
    if match:
        letter = (match["upper"] or match["lower"]).upper()
        if letter in letters:
            return letter
    for letter, option in _option_texts(choices):
        if _plain(option) == _plain(cleaned):
            return letter
    number = parse_number(cleaned)
    if number is not None:
        for letter, option in _option_texts(choices):
            if parse_number(option) == number:
                return letter
    return None


def last_choice(text: str, choices: Sequence[str] = ()) -> str | None:
    """The last option the text names, anywhere in it.

    Counts ``(C)``, ``C)``, ``answer is C``, ``option C``, ``**C**`` and a
    standalone capital letter not followed by a word unless the words call it
    the answer (``C is correct``; so the article in ``"A car is ..."`` and the
    people in ``"A and B can ..."`` or ``"C is 5 years older"`` do not count),
    nor by an ``=`` or another letter (``A = 5``, ``A, B and C``), limited to
    the letters the options use; and the text of an option when the text ends
    with it.

    Args:
        text: a generation.
        choices: the options, ``"A) ..."``; without them, letters A-E count.

    Returns:
        The upper-case letter found last, or None.
    """
    pairs = _option_texts(choices)
    letters = {letter for letter, _ in pairs} or set(_letters(choices))
    best: tuple[int, str] | None = None
    for pattern in _CHOICE_CANDIDATES:
        for match in pattern.finditer(text):
            letter = match[1].upper()
            if letter in letters and (best is None or match.start(1) > best[0]):
                best = (match.start(1), letter)
    body = text.rstrip(_TRAILING)
    folded = body.casefold()
    for letter, option in pairs:
        option = option.rstrip(_TRAILING).casefold()
        start = len(folded) - len(option)
        if not option or not folded.endswith(option) or (start > 0 and folded[start - 1].isalnum()):
            continue
        if best is None or start > best[0]:
            best = (start, letter)
    return best[1] if best else None


def normalize_yesno(text: str) -> str | None:
    """Read a yes/no answer from a short answer such as boxed content.

    Args:
        text: the answer text (``"Yes"``, ``"\\text{no}"``, ``"Yes, because ..."``,
            ``"True"``, ``"false."``).

    Returns:
        ``"Yes"`` (for yes or true), ``"No"`` (for no or false), or None if it
        starts with none of them.
    """
    match = _YES_NO_START.match(_unbraced(text))
    return _YES_NO_VALUES[match[1].casefold()] if match else None


def last_yesno(text: str) -> str | None:
    """The last yes or no (any case) that the text gives as an answer.

    Counts ``answer is no`` (also ``answer: true``), a yes/no starting a
    sentence or following "so"/"thus" before punctuation (``Yes, ...``,
    ``So, no, ...``) and one ending a sentence or line (``..., so no.``);
    not other uses such as ``no one``, ``no evidence``, ``No. 5`` or
    ``yes and no``.

    Args:
        text: a generation.

    Returns:
        ``"Yes"``, ``"No"``, or None.
    """
    found = [(match.start(1), match[1]) for pattern in _YES_NO_CANDIDATES for match in pattern.finditer(text)]
    return _YES_NO_VALUES[max(found)[1].casefold()] if found else None


def boxed_text(text: str) -> str | None:
    """The plain text of the last ``\\boxed{...}``, LaTeX wrappers removed.

    Used for gold answers that are not numbers (``"3:30 p.m."``, a name).

    Args:
        text: a generation.

    Returns:
        ``\\boxed{\\text{Mrs. Hilt}}`` gives ``"Mrs. Hilt"``; None if there
        is no box.
    """
    content = last_boxed(text)
    if content is None:
        return None
    return _unbraced(content).strip() or None


def strict_answer(text: str, answer_type: AnswerType, choices: Sequence[str] = ()) -> str | None:
    """The normalised content of the last ``\\boxed{...}`` (placeholders skipped).

    For numbers this is the value of the box's arithmetic after its last
    ``=`` (``\\boxed{36 \\div 2}`` gives ``"18"``, ``\\boxed{x = 5}`` gives
    ``"5"``), else the last number in the box (``\\boxed{\\$1,234.50}`` gives
    ``"1234.5"``, ``\\boxed{150 \\text{ m}^2}`` gives ``"150"``), or the box's
    plain text if it holds no number (for the few non-numeric gold answers).

    Args:
        text: a generation.
        answer_type: ``"number"``, ``"choice"`` or ``"yesno"``.
        choices: the options of a multiple-choice example.

    Returns:
        The normalised answer, or None if there is no box or its content does
        not fit the answer type.
    """
    content = last_boxed(text)
    if content is None:
        return None
    if answer_type == "number":
        value = evaluate_arithmetic(content.rpartition("=")[2])
        return format_number(value) if value is not None else last_number(content) or boxed_text(text)
    if answer_type == "choice":
        return normalize_choice(content, choices)
    return normalize_yesno(content)


def flexible_answer(text: str, answer_type: AnswerType, choices: Sequence[str] = ()) -> str | None:
    """The strict answer if there is one, else the last answer anywhere.

    Args:
        text: a generation.
        answer_type: ``"number"``, ``"choice"`` or ``"yesno"``.
        choices: the options of a multiple-choice example.

    Returns:
        The normalised answer, or None if nothing of the right kind appears.
    """
    strict = strict_answer(text, answer_type, choices)
    if strict is not None:
        return strict
    if answer_type == "number":
        return last_number(text)
    if answer_type == "choice":
        return last_choice(text, choices)
    return last_yesno(text)


def answers_equal(predicted: str | None, gold: str, answer_type: AnswerType, rel_tol: float = 1e-6) -> bool:
    """Whether an extracted answer matches the gold answer.

    Args:
        predicted: the normalised extracted answer, or None.
        gold: the example's gold answer.
        answer_type: ``"number"``, ``"choice"`` or ``"yesno"``.
        rel_tol: relative tolerance for numbers.

    Returns:
        Numbers compare by value (see :func:`numbers_equal`), option letters
        and yes/no case-insensitively; None never matches.
    """
    if predicted is None:
        return False
    if answer_type == "number":
        return numbers_equal(predicted, gold, rel_tol)
    return predicted.strip().casefold() == gold.strip().casefold()
