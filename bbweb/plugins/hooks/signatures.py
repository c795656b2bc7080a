"""Shared helpers for webhook dialects: request bodies, shared-secret signatures, payload
field access and timestamps.

Signatures are always computed over the exact request body bytes and compared with
:func:`hmac.compare_digest`, so the time a comparison takes tells nothing about how much of
a forged signature was right. A helper that finds a bad request raises ``ValueError`` (the
framework answers 400) or ``PermissionError`` (403); messages are short and never contain
the payload.
"""

from __future__ import annotations

import hmac
import json
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal, overload
from urllib.parse import parse_qs

from flask import Request

from bbweb.engine.changes import ChangeInput
from bbweb.values.validation import ValueRefused, check_change, loads

FORM_TYPES = ("application/x-www-form-urlencoded",)
ZERO_SHA_CHARS = frozenset("0")


# -- secrets and signatures ---------------------------------------------------------------------

def secret_bytes(value: Any, option: str) -> bytes | None:
    """A dialect's secret option as bytes (``None``/empty = no secret configured)."""
    if value is None or value is False or value == "" or value == b"":
        return None
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    raise TypeError(f"the {option!r} option must be a string")


def hmac_hex(secret: bytes, body: bytes, digest: Callable[..., Any] | str) -> str:
    """Lower-case hex HMAC of ``body`` keyed with ``secret``."""
    return hmac.new(secret, body, digest).hexdigest()


def same(given: str | bytes | None, expected: str | bytes) -> bool:
    """Constant-time equality of two tokens (any characters; ``None`` never matches)."""
    if given is None:
        return False
    a = given.encode("utf-8", "surrogateescape") if isinstance(given, str) else given
    b = expected.encode("utf-8", "surrogateescape") if isinstance(expected, str) else expected
    return hmac.compare_digest(a, b)


def check_prefixed_signature(header_value: str | None, secret: bytes, body: bytes,
                             algorithm: str, header_name: str) -> None:
    """Verify a ``<algorithm>=<hex HMAC>`` header (GitHub, Bitbucket); PermissionError if
    it is missing, of another algorithm, or wrong."""
    if not header_value:
        raise PermissionError(f"the request is not signed (no {header_name} header)")
    prefix, sep, signature = header_value.strip().partition("=")
    if not sep or prefix.strip().lower() != algorithm:
        raise PermissionError(f"{header_name} must be of the form {algorithm}=<hex digest>")
    if not same(signature.strip().lower(), hmac_hex(secret, body, algorithm)):
        raise PermissionError(f"the {header_name} signature does not match the body")


# -- request bodies -----------------------------------------------------------------------------

def raw_body(request: Request) -> bytes:
    """The exact body bytes (cached, so Flask can still parse a form from them)."""
    return request.get_data(cache=True)


def is_form(request: Request) -> bool:
    return request.mimetype in FORM_TYPES


def form_fields(body: bytes) -> dict[str, list[str]]:
    """Fields of a url-encoded body (parsed from the same bytes that were signed)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("the form body is not UTF-8") from None
    try:
        return parse_qs(text, keep_blank_values=True, max_num_fields=1000)
    except ValueError:
        raise ValueError("the form body has too many fields") from None


def load_json(data: bytes | str, what: str = "the payload") -> Any:
    """Decode JSON; ValueError with a short message (never the payload) on failure."""
    try:
        return loads(data, what)  # depth bounded as for every dialect
    except ValueRefused:
        raise
    except UnicodeDecodeError:
        raise ValueError(f"{what} is not UTF-8 JSON") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{what} is not valid JSON ({exc.msg} at position {exc.pos})") \
            from None
    except ValueError:  # e.g. an integer literal longer than Python converts
        raise ValueError(f"{what} is not valid JSON") from None


def payload_object(request: Request, body: bytes) -> dict[str, Any]:
    """The webhook payload: the ``payload`` form field of a url-encoded body (old-style
    services), else the whole body as JSON. Must be a JSON object."""
    if is_form(request):
        values = form_fields(body).get("payload")
        if not values:
            values = request.args.getlist("payload")
        if not values:
            raise ValueError("no 'payload' form field in the request")
        data = load_json(values[0])
    else:
        if not body.strip():
            if "payload" in request.args:
                data = load_json(request.args["payload"])
            else:
                raise ValueError("the request has no payload")
        else:
            data = load_json(body)
    if not isinstance(data, dict):
        raise ValueError("the payload must be a JSON object")
    return data


def query_arg(request: Request, name: str, body: bytes | None = None) -> str | None:
    """First value of a query argument, or of a form field of the same name (0.8 merged
    both into one mapping)."""
    value = request.args.get(name)
    if value is None and body is not None and is_form(request):
        values = form_fields(body).get(name)
        value = values[0] if values else None
    return value


# -- payload field access -----------------------------------------------------------------------

@overload
def obj(data: Any, key: str, where: str, required: Literal[True] = True) -> dict[str, Any]: ...
@overload
def obj(data: Any, key: str, where: str, required: bool) -> dict[str, Any] | None: ...


def obj(data: Any, key: str, where: str, required: bool = True) -> dict[str, Any] | None:
    """``data[key]`` which must be a JSON object (None only when not ``required``)."""
    value = data.get(key) if isinstance(data, dict) else None
    if value is None:
        if required:
            raise ValueError(f"the payload has no {where}")
        return None
    if not isinstance(value, dict):
        raise ValueError(f"{where} must be a JSON object")
    return value


@overload
def text(data: Any, key: str, where: str, required: Literal[True] = True,
         allow_empty: bool = True) -> str: ...
@overload
def text(data: Any, key: str, where: str, required: bool,
         allow_empty: bool = True) -> str | None: ...


def text(data: Any, key: str, where: str, required: bool = True,
         allow_empty: bool = True) -> str | None:
    """``data[key]`` which must be a string (None only when not ``required``)."""
    value = data.get(key) if isinstance(data, dict) else None
    if value is None:
        if required:
            raise ValueError(f"the payload has no {where}")
        return None
    if not isinstance(value, str):
        raise ValueError(f"{where} must be a string")
    if not allow_empty and not value:
        raise ValueError(f"{where} must not be empty")
    return value


def seq(data: Any, key: str, where: str, required: bool = True) -> list[Any]:
    """``data[key]`` which must be a JSON list (missing and not required = [])."""
    value = data.get(key) if isinstance(data, dict) else None
    if value is None:
        if required:
            raise ValueError(f"the payload has no {where}")
        return []
    if not isinstance(value, list):
        raise ValueError(f"{where} must be a list")
    return value


def str_list(data: Any, key: str, where: str) -> list[str]:
    """An optional list of strings (file names)."""
    items = seq(data, key, where, required=False)
    if not all(isinstance(i, str) for i in items):
        raise ValueError(f"{where} must be a list of strings")
    return items


def is_zero_sha(value: str | None) -> bool:
    """True for an all-zero (or empty) object name: git's "no commit" in a push."""
    return value is not None and set(value) <= ZERO_SHA_CHARS


# -- timestamps ---------------------------------------------------------------------------------

def iso_timestamp(value: Any, where: str) -> float | None:
    """Epoch seconds of an ISO-8601 timestamp (``2008-02-15T14:57:17-08:00``,
    ``…Z``, ``2012-05-30 03:58:56+00:00``); one without an offset is taken as UTC.
    ``None`` stays ``None``; anything unparseable is a ValueError."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{where} must be an ISO 8601 string")
    s = value.strip()
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(s)
    except ValueError:
        raise ValueError(f"{where} is not an ISO 8601 timestamp") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.timestamp()
    except (OverflowError, ValueError, OSError):
        raise ValueError(f"{where} is out of range") from None


def epoch_timestamp(value: Any, where: str) -> float | None:
    """Epoch seconds given as a JSON number."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{where} must be a number of seconds since the epoch")
    try:
        result = float(value)
    except OverflowError:
        raise ValueError(f"{where} is out of range") from None
    if not math.isfinite(result) or abs(result) > 1e11:
        raise ValueError(f"{where} is out of range")
    return result


# -- changes ------------------------------------------------------------------------------------

def checked(changes: list[ChangeInput]) -> list[ChangeInput]:
    """Refuse (ValueError naming the field) what cannot be stored: NUL characters, lone
    surrogates (which JSON escapes can carry but UTF-8 cannot), property values too deep
    or too large. The change-hook framework applies the same rules
    (:func:`bbweb.values.validation.check_change`) to every dialect's changes anyway; a
    dialect calling this just refuses earlier."""
    for ch in changes:
        check_change(ch)
    return changes
