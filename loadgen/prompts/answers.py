"""Prompts layer: expected answers, so that quality under load can be checked (pure).

A prompt may carry ``expected`` and ``match``: ``exact`` (ignoring case, surrounding white space
and punctuation, so "True." matches "true"),
``contains``, ``regex`` (searched), or ``choice`` (the first of the listed choices, e.g. "yes"/"no"
or "true"/"false", that appears as a word in the answer must be the expected one).
"""

from __future__ import annotations

import re

MATCHES = ("exact", "contains", "regex", "choice")
TRIM = " \t\n.,;:!?\"'"


def answer_is_correct(answer: str, expected: str | list[str], match: str) -> bool:
    text = answer.strip().casefold()
    if match == "exact":
        return text.strip(TRIM) == str(expected).strip().casefold().strip(TRIM)
    if match == "contains":
        return str(expected).casefold() in text
    if match == "regex":
        return re.search(str(expected), answer, flags=re.IGNORECASE | re.DOTALL) is not None
    if match == "choice":
        choices = expected if isinstance(expected, list) else [expected]
        right = str(choices[0]).casefold()
        words = re.findall(r"[\w']+", text)
        options = {str(choice).casefold() for choice in choices}
        first = next((word for word in words if word in options), None)
        return first == right
    raise ValueError(f"unknown match {match!r}; expected one of {', '.join(MATCHES)}")
