"""What went wrong, as a sentence a person can act on: one mapping for the page and the API.

The page shows `Problem.text` (an error, or information such as an empty collection); the
API sends it in OpenAI's error shape with `status` and `code`. Tracebacks go to the log only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import httpx
import openai

from quarry.app.budget import ContextTooLongError
from quarry.app.retrieval import EmptyCollectionError
from quarry.app.scope import ScopeError
from quarry.ingest.collection import StoreError
from quarry.ingest.embedding import EmbeddingModelError
from quarry.ingest.pipeline import IngestUsageError

log = logging.getLogger("quarry")

CONTEXT_TOO_LONG = (
    "The conversation is too long for the model. Start a new chat, ask a shorter question "
    "or lower top-k in the sidebar."
)
SERVER_DOWN = "The model server stopped answering. Check that `quarry serve` is running."


@dataclass(frozen=True)
class Problem:
    kind: Literal["error", "info"]  # info: a state to know about, not a fault
    text: str
    status: int = 500  # the HTTP status the API answers with
    code: str = "internal_error"


def explain(exc: BaseException) -> Problem:
    """The sentence for `exc`; unexpected errors are logged with their traceback."""
    if isinstance(exc, EmptyCollectionError):
        return Problem("info", str(exc), 404, "collection_empty")
    if isinstance(exc, ScopeError):
        return Problem("error", str(exc), 400, "scope_empty")
    if isinstance(exc, ContextTooLongError):
        return Problem("error", str(exc), 400, "context_length_exceeded")
    if isinstance(exc, openai.BadRequestError) and "maximum context length" in str(exc):
        return Problem("error", CONTEXT_TOO_LONG, 400, "context_length_exceeded")
    if isinstance(exc, ConnectionError | openai.APIConnectionError | httpx.TransportError):
        detail = str(exc) if isinstance(exc, ConnectionError) else ""
        return Problem("error", detail or SERVER_DOWN, 503, "model_server_unavailable")
    if isinstance(exc, openai.APIStatusError):
        return Problem(
            "error",
            f"The model server refused the request ({exc.status_code}): {exc}",
            502,
            "model_server_error",
        )
    if isinstance(exc, StoreError | EmbeddingModelError | IngestUsageError):
        return Problem("error", str(exc), 503, "store_error")
    log.exception("unexpected error while answering", exc_info=exc)
    return Problem("error", f"Something went wrong: {type(exc).__name__}: {exc}")
