"""Loan officers' review app: parcel maps in the browser, limits with reasons, overrides.

``create_app(out_dir, ...)`` builds the FastAPI app over a season run's outputs;
``serve(out_dir, host, port)`` runs it with uvicorn (``cropcredit review``). Tokens are
configured by the lender (``CROPCREDIT_TOKENS`` / ``CROPCREDIT_TOKENS_FILE``, see
:mod:`flows.review.auth`).
"""

from flows.review.app import create_app, serve
from flows.review.auth import Principal, TokenStore, load_tokens

__all__ = ["Principal", "TokenStore", "create_app", "load_tokens", "serve"]
