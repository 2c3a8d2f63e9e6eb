"""Shared bottom layer: parsers for the value syntaxes users type (flags and scenario files).

Each raises ``ValueError`` with a message saying what was expected; callers add which flag or
file/key it came from and turn it into a ``ConfigError``.
"""

from __future__ import annotations

import base64
import difflib
import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

from loadgen.config import SloTarget

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ns|us|µs|ms|s|m|h)?\s*$")
_UNIT_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
PER_REQUEST_SLO_METRICS = ("ttft", "ttfot", "tpot", "itl", "e2e")


def did_you_mean(value: str, known: Iterable[str]) -> str:
    """' (did you mean "tpot"?)' for a near miss among ``known``, else ''."""
    close = difflib.get_close_matches(value, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def parse_duration_ns(text: str | float | int, default_unit: str = "s") -> int:
    """'500ms', '2.5s', '1m', or a bare number in ``default_unit``."""
    if isinstance(text, bool):
        raise ValueError(f"expected a duration like 500ms or 30s, got {text!r}")
    if isinstance(text, (int, float)):
        value, unit = float(text), default_unit
    else:
        match = _DURATION.match(text)
        if not match:
            raise ValueError(f"expected a duration like 500ms or 30s, got {text!r}")
        value, unit = float(match.group(1)), match.group(2) or default_unit
    if value < 0:
        raise ValueError(f"expected a non-negative duration, got {text!r}")
    return round(value * _UNIT_NS[unit])


def parse_duration_s(text: str | float | int) -> float:
    return parse_duration_ns(text) / 1e9


def parse_positive_duration_s(text: str | float | int) -> float:
    """A duration that must be above zero (a limit of 0 would mean no limit, or no interval)."""
    seconds = parse_duration_s(text)
    if seconds <= 0:
        raise ValueError(f"expected a duration above zero like 500ms or 30s, got {text!r}")
    return seconds


def parse_levels(text: str | int | float | list[object], *, integer: bool) -> list[float]:
    """'1..64' → 1,2,4,…,64 (doubling; the end is always included); '1,8,32' → a list; '4' → [4]."""
    if isinstance(text, bool):
        raise ValueError(f"expected a number, a list like 1,8,32 or a range like 1..64, got {text!r}")
    if isinstance(text, (int, float)):
        items: list[object] = [text]
    elif isinstance(text, list):
        items = text
    elif ".." in text:
        start_text, _, end_text = text.partition("..")
        start, end = _parse_number(start_text, integer), _parse_number(end_text, integer)
        if start <= 0 or end < start:
            raise ValueError(f"expected a range like 1..64 with 0 < start <= end, got {text!r}")
        levels = []
        level = start
        while level < end:
            levels.append(level)
            level *= 2
        levels.append(end)
        return levels
    else:
        items = [part for part in text.split(",") if part.strip()]
    levels = [_parse_number(item, integer) for item in items]
    if not levels or any(level <= 0 for level in levels):
        raise ValueError(f"expected positive numbers, got {text!r}")
    return levels


def _parse_number(item: object, integer: bool) -> float:
    try:
        value = float(str(item).strip())
    except ValueError:
        raise ValueError(f"expected a number, got {item!r}") from None
    if integer:
        if value != int(value):
            raise ValueError(f"expected a whole number, got {item!r}")
        return int(value)
    return value


def parse_key_values(text: str) -> dict[str, str]:
    """'input=512,output=256' → {'input': '512', 'output': '256'}."""
    result: dict[str, str] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValueError(f"expected key=value pairs separated by commas, got {text!r}")
        result[key.strip()] = value.strip()
    return result


def parse_slo(text: str) -> tuple[SloTarget, ...]:
    """'ttft=500ms,tpot=50ms' (per request, for goodput), 'ttft_p99=500ms' (a percentile) or
    'ttft_mean=500ms' (the mean)."""
    targets = []
    for name, value in parse_key_values(text).items():
        metric, _, suffix = name.partition("_p")
        percentile = None
        mean = name.endswith("_mean")
        if mean:
            metric, suffix = name.removesuffix("_mean"), ""
        if suffix:
            try:
                percentile = float(suffix.replace("_", "."))
            except ValueError:
                raise ValueError(f"expected a percentile like ttft_p99, got {name!r}") from None
            if not 0 < percentile <= 100:
                raise ValueError(f"expected a percentile between 0 and 100 in {name!r}")
        if metric not in PER_REQUEST_SLO_METRICS:
            raise ValueError(f"unknown SLO metric {metric!r}; expected one of {', '.join(PER_REQUEST_SLO_METRICS)}")
        targets.append(SloTarget(metric, parse_duration_ns(value, "ms"), percentile, mean))
    if not targets:
        raise ValueError(f"expected SLOs like ttft=500ms,tpot=50ms, got {text!r}")
    return tuple(targets)


def parse_header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise ValueError(f"expected a header like 'Name: value', got {text!r}")
    return name.strip(), value.strip()


def port(text: str) -> int:
    """An argparse type: a TCP port, 0 to 65535 (argparse says "invalid port value" otherwise)."""
    number = int(text)
    if not 0 <= number <= 65535:
        raise ValueError(text)
    return number


def url_with_path(url: str, path: str) -> str:
    """``path`` appended to the URL's own path, before its query string (``?api-version=``, a key)."""
    base, question, query = url.partition("?")
    return base.rstrip("/") + path + question + query


def public_url(url: str) -> str:
    """The URL without ``user:password@`` or a query string (either may hold keys); robust to
    URLs that do not parse, for error messages about them."""
    try:
        parts = urlsplit(url)
        netloc = parts.hostname or ""
        if ":" in netloc:
            netloc = f"[{netloc}]"
        if parts.port:
            netloc += f":{parts.port}"
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    except ValueError:
        without_query = url.split("?", 1)[0]
        scheme, separator, rest = without_query.partition("://")
        return scheme + separator + rest.rpartition("@")[2] if separator else without_query.rpartition("@")[2]


def url_secrets(url: str) -> list[str]:
    """The parts of a URL that may be secrets: its password, user name, and query values."""
    try:
        parts = urlsplit(url)
        password, username = parts.password, parts.username
    except ValueError:
        return []
    values = [value for _, value in parse_qsl(parts.query)]
    secrets = [unquote(secret) for secret in (password, username, *values) if secret]
    if username:  # the transport sends them as Basic auth: its token is a secret too
        secrets.append(base64.b64encode(f"{unquote(username)}:{unquote(password or '')}".encode()).decode())
    return secrets


def request_secrets(header_values: Iterable[str], urls: Iterable[str | None], api_key: str | None = None) -> list[str]:
    """What a command's requests carry that must never be shown: each header's whole value and
    each long word of it ("Bearer KEY": the key alone may be echoed; "Cookie: session=VALUE;
    other=…": each cookie's value alone too), the URLs' credentials and query values, the API key."""
    values = list(header_values)
    secrets = [*values, *(word for value in values for word in re.split(r"[\s;,=]+", value) if len(word) >= 8)]
    if api_key:
        secrets.append(api_key)
    for url in urls:
        if url:
            secrets += url_secrets(url)
    return secrets
