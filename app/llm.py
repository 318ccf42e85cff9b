"""The chat model: LangChain's ChatOpenAI pointed at the local vLLM server."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from langchain_openai import ChatOpenAI
from pydantic import SecretStr

from quarry.settings import QuarrySettings


@dataclass(frozen=True)
class ServerStatus:
    healthy: bool
    models: tuple[str, ...] = ()
    error: str = ""


def _headers(settings: QuarrySettings) -> dict[str, str]:
    key = settings.server.api_key
    return {"Authorization": f"Bearer {key}"} if key else {}


def server_status(settings: QuarrySettings, timeout_s: float = 3) -> ServerStatus:
    """Is the model server up, and which models does it serve?"""
    base = settings.server.base_url
    try:
        response = httpx.get(f"{base}/v1/models", headers=_headers(settings), timeout=timeout_s)
    except httpx.TransportError:
        return ServerStatus(
            False,
            error=f"No model server answers at {base}. Start it with "
            "`quarry serve` (or `make run`).",
        )
    if response.status_code == 401:
        return ServerStatus(
            False,
            error=f"The model server at {base} wants an API key: set "
            "QUARRY_SERVER_API_KEY to the key it was started with.",
        )
    if response.status_code != 200:
        return ServerStatus(
            False,
            error=f"The model server at {base} answered "
            f"{response.status_code}: {response.text[:200]}",
        )
    models = tuple(m["id"] for m in response.json().get("data", []))
    return ServerStatus(True, models)


def discover_model(settings: QuarrySettings) -> str:
    """The served model's name: the one the settings name if served, else the first served."""
    status = server_status(settings)
    if not status.healthy:
        raise ConnectionError(status.error)
    wanted = settings.server.served_model_name
    if wanted and wanted in status.models:
        return wanted
    if not status.models:
        raise ConnectionError(f"The model server at {settings.server.base_url} serves no model.")
    return status.models[0]


def chat_model(
    settings: QuarrySettings, model: str, *, temperature: float, max_tokens: int | None = None
) -> ChatOpenAI:
    return ChatOpenAI(
        base_url=f"{settings.server.base_url}/v1",
        api_key=SecretStr(settings.server.api_key or "unused"),
        model=model,
        temperature=temperature,
        max_completion_tokens=max_tokens,
        streaming=True,
        stream_usage=True,
        max_retries=1,
        timeout=300,
    )
