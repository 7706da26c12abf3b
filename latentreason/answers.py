"""Answer extraction and normalisation for the three answer types.

Everything here is a pure function of strings, used by the evaluators and
testable without a model.

Two extractions are made from a generation:

* **strict**: the content of the last complete ``\\boxed{...}``, the format the
  task instructions ask for, normalised for the answer type; None if there is
  no such box.
* **flexible**: the strict answer if there is one, otherwise the last answer of
  the right kind anywhere in the text (the last number, the last standalone
  option letter or option text, the last yes/no). So a flexible answer exists
  whenever a strict one does, and they then agree.

Normalised forms: numbers as in the datasets (no thousands separators, no
trailing ``.0``: ``"1234"``, ``"0.5"``, ``"-3"``); options as an upper-case
letter; yes/no as ``"Yes"`` or ``"No"``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from fractions import Fraction

from latentreason.task import AnswerType

#: A regular expression (source text) that matches a complete, non-empty
#: ``\boxed{...}`` whose content nests braces at most two levels deep, e.g.
#: ``\boxed{\text{\$1{,}234}}``. Generation can stop once it matches.
BOXED_PATTERN = r"\\boxed\s*\{(?=\s*[^\s}])(?:[^{}]|\{(?:[^{}]|\{[^{}]*\})*\})*\}"

_BOX_START = re.compile(r"\\(?:boxed|fbox)\s*\{")

_WRAPPER = re.compile(r"\\(?:text|textbf|textit|textrm|mathrm|mathbf|mathit|mbox|operatorname)\s*\{([^{}]*)\}")
_FRAC = re.compile(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")
_LATEX_SUBSTITUTIONS = (
    (re.compile(r"\{,\}"), ","),
    (re.compile(r"\\[,!]"), ""),
    (re.compile(r"\\(?:[;: ]|quad|qquad)"), " "),
    (re.compile(r"\^\s*\{?\\circ\}?"), ""),
    (re.compile(r"\\(?:left|right)\b"), ""),
    (re.compile(r"\\([$%])"), r"\1"),
)

# One number: an optional sign attached to it, an optional dollar sign,
# digits with optional thousands separators and decimals, and an optional
# "/denominator" (a fraction). Not glued to a preceding word, decimal point or
# slash, so "16-3" reads as 16 and 3 and the parts of "04/29/2021" are not
# taken as fractions.
_NUMBER = re.compile(
    r"(?<![\w./])"
    r"(?P<sign>[-\u2212])?"
    r"\$?"
    r"(?P<num>(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|\.\d+)"
    r"(?:\s*/\s*(?P<den>\d+(?:\.\d+)?)(?![\d/]))?"
)
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
    # "A car is ..."), unless that word is one that follows a letter as a name
    re.compile(r"(?<![A-Za-z'])([A-Z])(?![A-Za-z'])(?!\s+(?!(?:is|was|and|or|seems|fits|matches)\b)[a-z])"),
)
_YES_NO = re.compile(r"\b(yes|no)\b", re.IGNORECASE)
_TRAILING = " \t\r\n.!*\"'`$)"


def last_boxed(text: str) -> str | None:
    """The content of the last complete, non-empty ``\\boxed{...}`` (or ``\\fbox{...}``).

    Braces inside are matched, so ``\\boxed{\\frac{1}{2}}`` gives
    ``\\frac{1}{2}``; a box left open at the end of the text, or an empty
    one, is ignored.

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
                    found = text[start.end() : pos].strip() or found
                    break
    return found


def clean_latex(text: str) -> str:
    """Undo the LaTeX that commonly wraps an answer.

    ``\\text{..}``-style wrappers are unwrapped, ``\\frac{a}{b}`` becomes
    ``a/b``, ``\\$`` and ``\\%`` lose their backslash, ``{,}`` becomes ``,``,
    thin spaces are dropped and ``^\\circ`` is removed.

    Args:
        text: any text.

    Returns:
        The text with those constructs replaced.
    """
    previous = None
    while previous != text:
        previous = text
        text = _WRAPPER.sub(r"\1", text)
        text = _FRAC.sub(r"\1/\2", text)
    for pattern, replacement in _LATEX_SUBSTITUTIONS:
        text = pattern.sub(replacement, text)
    return text


def _value(match: re.Match[str]) -> Fraction | None:
    value = Fraction(match["num"].replace(",", ""))
    if match["den"] is not None:
        denominator = Fraction(match["den"])
        if denominator == 0:
            return None
        value /= denominator
    return -value if match["sign"] else value


def _numbers(text: str) -> list[Fraction]:
    values = (_value(m) for m in _NUMBER.finditer(clean_latex(text)))
    return [v for v in values if v is not None]


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
    cleaned = clean_latex(text).replace("{", "").replace("}", "")
    if not _NUMBER_ONLY.fullmatch(cleaned):
        return None
    values = _numbers(cleaned)
    return values[0] if len(values) == 1 else None


def last_number(text: str) -> str | None:
    """The last number in ``text``, normalised.

    Handles signs (``-3``), decimals, thousands separators (``1,234``),
    currency and percent signs, units (``5kg``, ``12 dollars``), fractions
    (``3/4`` gives ``0.75``) and a trailing full stop (``18.``).

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
    cleaned = clean_latex(text).replace("{", "").replace("}", "").strip(" \t\n$*\"'")
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
    standalone capital letter not followed by a word (so the article in
    ``"A car is ..."`` does not count), limited to the letters the options
    use; and the text of an option when the text ends with it.

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
        text: the answer text (``"Yes"``, ``"\\text{no}"``, ``"Yes, because ..."``).

    Returns:
        ``"Yes"``, ``"No"``, or None if it starts with neither.
    """
    cleaned = clean_latex(text).replace("{", "").replace("}", "")
    match = re.match(r"\W*(yes|no)\b", cleaned, re.IGNORECASE)
    return match[1].capitalize() if match else None


def last_yesno(text: str) -> str | None:
    """The last whole word yes or no in the text (any case).

    Args:
        text: a generation.

    Returns:
        ``"Yes"``, ``"No"``, or None.
    """
    matches = _YES_NO.findall(text)
    return matches[-1].capitalize() if matches else None


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
    return clean_latex(content).replace("{", "").replace("}", "").strip() or None


def strict_answer(text: str, answer_type: AnswerType, choices: Sequence[str] = ()) -> str | None:
    """The normalised content of the last ``\\boxed{...}``.

    For numbers this is the last number in the box (``\\boxed{\\$1,234.50}``
    gives ``"1234.5"``, ``\\boxed{x = 5}`` gives ``"5"``), or the box's plain
    text if it holds no number (for the few non-numeric gold answers).

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
        return last_number(content) or boxed_text(text)
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
