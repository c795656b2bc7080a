"""Per-badge tokens: a status badge of a private site that may be shown in public.

A site with ``view`` restricted protects ``/png`` and ``/badge.svg`` like every page. To
put one builder's badge in a public README, ``bbweb badge-token BASEDIR BUILDER`` prints a
token; a badge request naming that builder (``?builder=NAME&token=…``) is then served to
anyone. The token is an HMAC of the builder name under the site's secret key, so it
opens that builder's badge only, and replacing ``BASEDIR/web-secret.key`` revokes every
token at once (and every session).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from flask import current_app

_PURPOSE = b"bbweb badge token\0"


def make_badge_token(secret: bytes, builder: str) -> str:
    """The token that opens ``builder``'s badge."""
    mac = hmac.new(secret, _PURPOSE + builder.encode("utf-8"), hashlib.sha256)
    return mac.hexdigest()[:32]


def badge_token_valid(args: Mapping[str, str], token: str) -> bool:
    """Whether ``token`` opens the badge the request's ``builder`` argument names."""
    builder = args.get("builder", "")
    if not builder:
        return False
    secret = current_app.secret_key
    if isinstance(secret, str):
        secret = secret.encode("utf-8")
    if not secret:
        return False
    return hmac.compare_digest(make_badge_token(secret, builder).encode("ascii"),
                               token.encode("utf-8", "surrogateescape"))
