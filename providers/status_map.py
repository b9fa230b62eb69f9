"""The one mapping from an HTTP status to our error classes, shared by every provider that sees statuses.

The HTTP providers read the status of their own response; `claude_cli` reads the CLI's `api_error_status`
(the status of the API call the CLI made). Each provider handles its vendor's special cases first (spend caps,
Anthropic's 529 error type, OpenAI-compatible servers' 503 "busy"), then asks here.

    401, 403                  AuthenticationFailed   the key or login is wrong; never retry
    402                       QuotaExhausted         payment required: the balance is gone
    408                       ProviderTimeout        the server gave up waiting for us
    429                       RateLimited            wait for retry-after or fail over
    529                       Overloaded             Anthropic's "overloaded_error"
    400, 404, 405, 413, 415, 422  BadRequest         this request is wrong everywhere; no failover
    409, other 4xx, 5xx, ...  Unavailable            undocumented or server-side: another provider may work

One wording beats its status: Anthropic answers an empty prepaid balance with a 400 `invalid_request_error`
"Your credit balance is too low to access the Anthropic API ..." (and the CLI quotes it). That is an exhausted
quota (`error_type` `credit_balance`): fail over, never retry.
"""

from __future__ import annotations

import re

from providers.errors import (
    AuthenticationFailed,
    BadRequest,
    Overloaded,
    ProviderError,
    ProviderTimeout,
    QuotaExhausted,
    RateLimited,
    Unavailable,
)

# Statuses that say the request itself is wrong, so sending it to another provider repeats the failure.
BAD_REQUEST_STATUSES = frozenset({400, 404, 405, 413, 415, 422})

_BY_STATUS: dict[int, type[ProviderError]] = {
    401: AuthenticationFailed,
    403: AuthenticationFailed,
    402: QuotaExhausted,
    408: ProviderTimeout,
    429: RateLimited,
    529: Overloaded,
    **dict.fromkeys(BAD_REQUEST_STATUSES, BadRequest),
}


CREDIT_BALANCE = "credit_balance"
_CREDIT_BALANCE_TEXT = re.compile(r"credit balance is too low", re.IGNORECASE)


def is_credit_balance_message(text: str) -> bool:
    """Whether an error message says the account's prepaid credit is used up."""
    return bool(_CREDIT_BALANCE_TEXT.search(text))


def error_class_for_status(status: int) -> type[ProviderError]:
    """The usual meaning of an HTTP status (see the table above); anything unlisted is `Unavailable`."""
    return _BY_STATUS.get(status, Unavailable)
