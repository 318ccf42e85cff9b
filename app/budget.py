"""Count a request's tokens with the served model's own tokenizer and chat template.

vLLM's `/tokenize` endpoint applies the same chat template as `/v1/chat/completions`, so the
count is exact, and it returns the server's `max_model_len` with it. The chain uses this to
make every request fit, leaving room for the answer, instead of letting the server refuse it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import httpx
from langchain_core.messages import BaseMessage

ROLES = {"system": "system", "human": "user", "ai": "assistant"}


class ContextTooLongError(ValueError):
    """Even without history and with a single passage the request does not fit."""


@dataclass(frozen=True)
class TokenCount:
    tokens: int
    max_model_len: int


# Tokens a chat template may add per message (role headers, special tokens): generous.
TEMPLATE_TOKENS_PER_MESSAGE = 16


class TokenCounter:
    def __init__(self, base_url: str, model: str, api_key: str | None = None) -> None:
        self.url = f"{base_url}/tokenize"
        self.model = model
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.max_model_len: int | None = None  # learnt from the first count

    def surely_fits(self, messages: Sequence[BaseMessage], answer_tokens: int) -> bool:
        """True when the request fits whatever the tokenizer does: no token is shorter than
        one byte of UTF-8, so bytes bound tokens. Saves a round trip before the first token
        for the short requests that are most of them."""
        if self.max_model_len is None:
            return False
        bound = sum(len(str(m.content).encode()) + TEMPLATE_TOKENS_PER_MESSAGE for m in messages)
        return bound + answer_tokens <= self.max_model_len

    def count(self, messages: Sequence[BaseMessage]) -> TokenCount:
        payload = {
            "model": self.model,
            "messages": [{"role": ROLES[m.type], "content": str(m.content)} for m in messages],
            "add_generation_prompt": True,
        }
        response = httpx.post(self.url, json=payload, headers=self.headers, timeout=30)
        response.raise_for_status()
        data = response.json()
        self.max_model_len = int(data["max_model_len"])
        return TokenCount(int(data["count"]), self.max_model_len)
