"""`quarry api`: the chat chain as an OpenAI-compatible HTTP server.

Any OpenAI client (the `openai` package, LangChain's ChatOpenAI, Open WebUI) can ask a Quarry
collection: each collection is a model, `quarry/<collection>`. An answer is the page's answer:
hybrid search, the passages in the prompt, checked citations. The text carries `[n]` markers
and ends with a "Sources" list, which any client shows; the sources also travel as a
`sources` field of the response (of the last chunk when streamed) for clients that read it.

A request may add, beside OpenAI's fields, `scope` (folders or files of the collection to
search only) and `top_k`. System messages are not passed on: Quarry answers with its own
prompt, which keeps the answer to the documents.
"""

from __future__ import annotations

import hmac
import json
import re
import time
import uuid
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from quarry.app.chain import Answer, ChatChain, Token, Turn
from quarry.app.errors import Problem, explain
from quarry.app.scope import Scope
from quarry.components import Components
from quarry.ingest.collection import StoreLocation, list_collections
from quarry.settings import QuarrySettings

MODEL_PREFIX = "quarry/"
SOURCES_HEADING = "\n\n**Sources**\n\n"  # also how an earlier answer's list is found and cut


# -- the request --------------------------------------------------------------------------


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str = ""


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")  # name, tool_calls...: accepted, not used
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None

    @property
    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content if part.type == "text")
        return self.content or ""


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class ChatRequest(BaseModel):
    """OpenAI's chat request, the fields Quarry uses; others are accepted and ignored."""

    model_config = ConfigDict(extra="allow")
    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    scope: list[str] | None = Field(None, description="Folders or files to search only.")
    top_k: int | None = Field(None, ge=1, le=50, description="Passages given to the model.")


class ApiError(Exception):
    """An error answered in OpenAI's shape."""

    def __init__(self, status: int, message: str, code: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param

    @classmethod
    def of(cls, problem: Problem) -> ApiError:
        return cls(problem.status, problem.text, problem.code)

    def body(self) -> dict[str, Any]:
        kind = "invalid_request_error" if self.status < 500 else "server_error"
        if self.status == 401:
            kind = "authentication_error"
        error = {"message": self.message, "type": kind, "param": self.param, "code": self.code}
        return {"error": error}


def conversation(messages: list[ChatMessage]) -> tuple[str, list[Turn]]:
    """The question (the last user message) and the turns before it, as the chain's memory.

    An earlier answer's "Sources" list is cut: the model wrote the answer, not the list."""
    if messages[-1].role != "user" or not messages[-1].text.strip():
        raise ApiError(
            400, "The last message must be the user's question, with text.", "invalid_messages",
            param="messages",
        )  # fmt: skip
    history: list[Turn] = []
    for message in messages[:-1]:
        if message.role == "user":
            history.append(Turn("user", message.text))
        elif message.role == "assistant" and message.text:
            history.append(Turn("assistant", message.text.split(SOURCES_HEADING)[0]))
    return messages[-1].text, history


# -- the answer ---------------------------------------------------------------------------


def sources(answer: Answer) -> list[dict[str, Any]]:
    """Every passage the model was given, numbered as the text cites them, with the checks'
    verdict on the cited ones (`supported`: the passage backs the sentences citing it)."""
    cited = {c.number for c in answer.citations}
    verdicts = {check.number: check.supported for check in answer.citation_checks}
    return [
        {
            "number": number,
            "document": passage.source,
            "title": passage.title,
            "heading": passage.heading,
            "page": passage.page,
            "text": passage.text,
            "chunk_id": passage.chunk_id,
            "score": round(passage.score, 4),
            "cited": number in cited,
            "supported": verdicts.get(number) if number in cited else None,
            "evidence": answer.evidence.get(number, []),
        }
        for number, passage in enumerate(answer.passages, start=1)
    ]


def sources_list(answer: Answer, streamed: str | None = None) -> str:
    """The Markdown list that ends the text: each cited passage once, in citing order. When
    the text was streamed as the model wrote it, markers the checks removed are listed too,
    saying so."""
    lines = [f"- [{c.number}] {c.passage.label}" for c in answer.citations]
    if streamed is not None:
        listed = {c.number for c in answer.citations}
        for number in dict.fromkeys(int(n) for n in re.findall(r"\[(\d+)\]", streamed)):
            if number not in listed and 0 < number <= len(answer.passages):
                label = answer.passages[number - 1].label
                lines.append(f"- [{number}] {label} (does not support the sentence citing it)")
    return SOURCES_HEADING + "\n".join(lines) if lines else ""


def usage(answer: Answer) -> dict[str, int]:
    prompt = answer.input_tokens or answer.prompt_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": answer.output_tokens,
        "total_tokens": prompt + answer.output_tokens,
    }


class Asked:
    """One request's answer under way: its id, model name and events."""

    def __init__(self, model: str, events: Iterator[Any]) -> None:
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.model = model
        self.events = events

    def chunk(self, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        body = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
            **extra,
        }
        return f"data: {json.dumps(body)}\n\n"

    def completion(self) -> dict[str, Any]:
        """Non-streamed: the checked text, its sources list, the usage."""
        answer = next(e for e in self.events if isinstance(e, Answer))
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer.text + sources_list(answer)},
                    "finish_reason": answer.finish_reason,
                    "logprobs": None,
                }
            ],
            "usage": usage(answer),
            "sources": sources(answer),
        }

    def stream(self, first: Any, include_usage: bool) -> Iterator[str]:
        """Server-sent events as OpenAI sends them: the role, the text as the model writes
        it, the sources list, a last chunk with the finish reason and `sources`, the usage
        when asked for, then [DONE]. An error midway is sent as an `error` event."""
        yield self.chunk({"role": "assistant", "content": ""})
        streamed = ""
        try:
            for event in _chain_of(first, self.events):
                if isinstance(event, Token):
                    streamed += event.text
                    yield self.chunk({"content": event.text})
                elif isinstance(event, Answer):
                    listed = sources_list(event, streamed)
                    if listed:
                        yield self.chunk({"content": listed})
                    yield self.chunk({}, event.finish_reason, sources=sources(event))
                    if include_usage:
                        yield self._usage_chunk(event)
        except Exception as exc:
            yield f"data: {json.dumps(ApiError.of(explain(exc)).body())}\n\n"
        finally:
            close = getattr(self.events, "close", None)
            if close is not None:
                close()  # a client that went away stops the model server's generation too
        yield "data: [DONE]\n\n"

    def _usage_chunk(self, answer: Answer) -> str:
        body = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": usage(answer),
        }
        return f"data: {json.dumps(body)}\n\n"


def _chain_of(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest


# -- the server ---------------------------------------------------------------------------


class QuarryApi:
    """The server's state: the shared parts, and which collections were warmed."""

    def __init__(self, parts: Components) -> None:
        self.parts = parts
        self.warmed: set[str] = set()

    @property
    def settings(self) -> QuarrySettings:
        return self.parts.settings

    def collections(self) -> list[str]:
        return [
            c.name for c in list_collections(self.parts.chroma, StoreLocation.of(self.settings))
        ]

    def collection_for(self, model: str) -> str:
        """`quarry/<name>` or a bare collection name; refused when no such collection."""
        name = model.removeprefix(MODEL_PREFIX)
        known = self.collections()
        if name not in known:
            offered = ", ".join(MODEL_PREFIX + n for n in known) or "none: ingest documents first"
            raise ApiError(
                404, f"No collection for the model {model!r}. Models: {offered}.",
                "model_not_found", param="model",
            )  # fmt: skip
        return name

    def chain(self, request: ChatRequest, collection: str) -> ChatChain:
        """A chain for this request's choices, on the shared parts (built once)."""
        base = self.settings
        chat = base.chat.model_copy(
            update={
                "temperature": base.chat.temperature
                if request.temperature is None
                else request.temperature,
                "max_tokens": request.max_completion_tokens
                or request.max_tokens
                or base.chat.max_tokens,
            }
        )
        retrieval = base.retrieval.model_copy(
            update={"top_k": request.top_k or base.retrieval.top_k}
        )
        settings = base.model_copy(update={"chat": chat, "retrieval": retrieval})
        chain = self.parts.with_settings(settings).chain(collection, warm=False)
        if collection not in self.warmed:
            chain.warm()  # the first question to a collection loads its index, once
            self.warmed.add(collection)
        return chain


def _authorised(request: Request) -> None:
    """The API key, when the server has one, as a Bearer token (compared in constant time)."""
    key = request.app.state.quarry.settings.api.api_key
    if not key:
        return
    sent = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(sent.encode(), key.encode()):
        raise ApiError(
            401, "Missing or wrong API key: send it as `Authorization: Bearer <key>` "
            "(QUARRY_API_API_KEY on the server).", "invalid_api_key",
        )  # fmt: skip


Authorised = Annotated[None, Depends(_authorised)]


def create_app(settings: QuarrySettings, parts: Components | None = None) -> FastAPI:
    """The FastAPI application over `settings` (and `parts`, when already built)."""
    state = QuarryApi(parts or Components(settings))
    api = FastAPI(title="Quarry", version="1", docs_url="/docs", redoc_url=None)
    api.state.quarry = state

    @api.exception_handler(ApiError)
    def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    @api.exception_handler(RequestValidationError)
    def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"] if p != "body")
        error = ApiError(400, f"{where}: {first['msg']}", "invalid_request", param=where or None)
        return JSONResponse(error.body(), status_code=400)

    @api.exception_handler(HTTPException)
    def _http(_: Request, exc: HTTPException) -> JSONResponse:
        error = ApiError(exc.status_code, str(exc.detail), "not_found" if exc.status_code == 404
                         else "http_error")  # fmt: skip
        return JSONResponse(error.body(), status_code=exc.status_code)

    @api.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/v1/models")
    def models(_: Authorised) -> dict[str, Any]:
        try:
            names = state.collections()
        except Exception as exc:
            raise ApiError.of(explain(exc)) from None
        return {
            "object": "list",
            "data": [
                {"id": MODEL_PREFIX + name, "object": "model", "created": 0, "owned_by": "quarry"}
                for name in names
            ],
        }

    @api.post("/v1/chat/completions", response_model=None)
    def chat_completions(request: ChatRequest, _: Authorised) -> JSONResponse | StreamingResponse:
        question, history = conversation(request.messages)
        try:
            collection = state.collection_for(request.model)
            model = MODEL_PREFIX + collection
            chain = state.chain(request, collection)
            events = chain.stream(question, history, Scope.of(request.scope))
            if not request.stream:
                return JSONResponse(Asked(model, events).completion())
            first = next(events)  # errors before the answer starts get an HTTP status
        except ApiError:
            raise
        except Exception as exc:
            raise ApiError.of(explain(exc)) from None
        include_usage = bool(request.stream_options and request.stream_options.include_usage)
        return StreamingResponse(
            Asked(model, events).stream(first, include_usage), media_type="text/event-stream"
        )

    return api


def serve(settings: QuarrySettings) -> None:
    """Run the API until interrupted (uvicorn, one process; answers run in its threads)."""
    import uvicorn

    uvicorn.run(
        create_app(settings),
        host=settings.api.host,
        port=settings.api.port,
        log_level="warning",
    )
