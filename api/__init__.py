"""The HTTP API and the provider board (`switchboard serve`): FastAPI over the same providers, router, limits
and ledger as batches. Imports every package below it; only the CLI imports it, to serve it."""

from api.app import API_PREFIX, create_app
from api.auth import TOKEN_ENV, Principal, TokenProblem, TokenSet

__all__ = ["API_PREFIX", "TOKEN_ENV", "Principal", "TokenProblem", "TokenSet", "create_app"]
