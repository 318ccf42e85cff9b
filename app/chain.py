"""The chat chain: rewrite the question, retrieve, answer with citations, streaming.

Requests are laid out for vLLM's prefix cache: the system prompt is the same for every
request; past turns follow as plain question and answer, append-only, so each request
begins with the previous one's system prompt and history; the question and its passages
come last, ordered by document and position (not by score), so the same passages retrieved
again give the same text. Replaying earlier turns with their passages reuses more of the
cache but made every turn slower to start on the CPU (docs/decisions.md). When a request
would not fit the model, the oldest turns go first, then the lowest-ranked passages, and
the answer says what was left out.
"""

from __future__ import annotations

import re
import time
from collections.abc import Collection, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_openai import ChatOpenAI

from app.budget import ContextTooLongError, TokenCounter
from app.citation_check import CitationCheck, ask_model, attribute, check_citations
from app.citations import Citation, resolve
from app.injection_classifier import InjectionClassifier
from app.prompts import render
from app.retrieval import Passage, Retriever
from app.screening import Screen, screen, screen_batch
from app.tools import PassageRegistry, run_tool_call, tool_schemas
from quarry.settings import ChatSettings


@dataclass(frozen=True)
class Turn:
    role: Literal["user", "assistant"]
    content: str


@dataclass(frozen=True)
class Token:
    """A piece of the answer, as it streams."""

    text: str


@dataclass(frozen=True)
class Status:
    """What the chain is doing now (searching, calling a tool)."""

    text: str


@dataclass
class Answer:
    """The finished answer: cleaned text, its citations, and how fast it came."""

    text: str
    query: str
    passages: list[Passage]
    citations: list[Citation] = field(default_factory=list)
    refused: bool = False
    ttft_s: float | None = None
    output_tokens: int = 0
    seconds: float = 0.0
    tool_calls: int = 0
    prompt_tokens: int = 0
    dropped_turns: int = 0  # history left out to fit the model's length
    dropped_passages: list[Passage] = field(default_factory=list)
    # Screening: the question looked like a jailbreak (warned, not blocked); passages that
    # carry instructions (quoted to the model as untrusted data).
    question_screen: Screen | None = None
    flagged_chunk_ids: set[str] = field(default_factory=set)
    citation_checks: list[CitationCheck] = field(default_factory=list)
    looped: bool = False  # cut short because the model kept repeating itself
    attributed: bool = False  # the model cited nothing: Quarry added the markers

    @property
    def unsupported_citations(self) -> list[CitationCheck]:
        return [c for c in self.citation_checks if not c.supported]

    @property
    def tokens_per_s(self) -> float | None:
        if self.ttft_s is None or self.output_tokens < 2 or self.seconds <= self.ttft_s:
            return None
        return (self.output_tokens - 1) / (self.seconds - self.ttft_s)


Event = Token | Status | Answer


def history_messages(history: Sequence[Turn]) -> list[BaseMessage]:
    return [HumanMessage(t.content) if t.role == "user" else AIMessage(t.content) for t in history]


SENTENCE_RE = re.compile(r"[^.!?\n]*[.!?\n]+")
LOOP_REPEATS = 3  # the same sentence this many times: small models rarely recover


def _sentences(text: str) -> list[str]:
    return [m.group(0) for m in SENTENCE_RE.finditer(text)]


def is_looping(text: str) -> bool:
    """True when a complete sentence of some length has appeared LOOP_REPEATS times."""
    counts: dict[str, int] = {}
    for sentence in _sentences(text):
        key = " ".join(sentence.split()).lower()
        if len(key) >= 12:
            counts[key] = counts.get(key, 0) + 1
            if counts[key] >= LOOP_REPEATS:
                return True
    return False


def without_repeats(text: str) -> str:
    """The text with each repeated sentence kept once, where it first appeared."""
    seen: set[str] = set()
    kept = []
    for sentence in _sentences(text):
        key = " ".join(sentence.split()).lower()
        if len(key) >= 12 and key in seen:
            continue
        seen.add(key)
        kept.append(sentence)
    return "".join(kept).strip()


def stable_order(passages: Sequence[Passage]) -> list[Passage]:
    """Document order: the same retrieved set always renders to the same prompt text."""
    return sorted(passages, key=lambda p: p.order_key)


class ChatChain:
    def __init__(
        self,
        llm: ChatOpenAI,
        retriever: Retriever,
        settings: ChatSettings,
        *,
        counter: TokenCounter | None = None,
        collection: str = "",
        classifier: InjectionClassifier | None = None,
    ) -> None:
        self.llm = llm
        self.retriever = retriever
        self.settings = settings
        self.counter = counter
        self.collection = collection
        self.classifier = classifier  # screens beside the offline patterns when set
        self.system_prompt = render("system")

    def standalone_query(self, question: str, history: Sequence[Turn]) -> str:
        """A follow-up ("and on Windows?") rewritten so retrieval understands it alone."""
        if not history or not self.settings.rewrite_followups:
            return question
        prompt = render("rewrite", history=history[-6:], question=question)
        reply = self.llm.invoke([HumanMessage(prompt)], temperature=0, max_tokens=64)
        rewritten = str(reply.content).strip().strip('"').splitlines()
        query = rewritten[0].strip() if rewritten else ""
        # A small model may answer instead of rewriting: keep the question in the query then.
        return query if 0 < len(query) <= 300 else question

    def messages(
        self,
        question: str,
        history: Sequence[Turn],
        passages: Sequence[Passage],
        registry: PassageRegistry,
        flagged: Collection[str] | None = None,
    ) -> list[BaseMessage]:
        """The request, laid out so that each turn's prefix is the previous turn's prefix.

        `flagged`: chunk ids screened as carrying instructions; None screens offline here."""
        if flagged is None:
            flagged = {p.chunk_id for p in passages if screen(p.text, source="passage").flagged}
        prompt = render(
            "answer",
            question=question,
            passages=[
                {
                    "number": registry.number(p),
                    "label": p.label,
                    "text": p.text,
                    "flagged": p.chunk_id in flagged,
                }
                for p in passages
            ],
        )
        return [SystemMessage(self.system_prompt), *history_messages(history), HumanMessage(prompt)]

    def stream(self, question: str, history: Sequence[Turn] = ()) -> Iterator[Event]:
        started = time.monotonic()
        query = self.standalone_query(question, history)
        if query != question:
            yield Status(f"Searching for: {query}")
        passages = self.retriever.search(query, self.retriever.top_k)
        screens = screen_batch(question, [p.text for p in passages], self.classifier)
        if screens.warning:
            yield Status(f"Warning: {screens.warning}")
        question_screen = screens.question
        if question_screen.flagged:
            yield Status(
                "Warning: this message looks like an attempt to change the assistant's "
                f"instructions ({'; '.join(question_screen.reasons)}). Answering from the "
                "documents as usual."
            )
        if not passages and not self.settings.use_tools:
            text = render("no_answer", collection=self.collection)
            yield Token(text)
            yield Answer(
                text,
                query,
                [],
                refused=True,
                seconds=time.monotonic() - started,
                question_screen=question_screen,
            )
            return

        answer = Answer("", query, [], question_screen=question_screen)
        answer.flagged_chunk_ids = {
            p.chunk_id for p, s in zip(passages, screens.passages, strict=True) if s.flagged
        }
        messages, registry = self._fit(question, list(history), passages, answer)
        if answer.dropped_turns or answer.dropped_passages:
            yield Status(
                f"Left out to fit the model: {answer.dropped_turns} earlier turn(s), "
                f"{len(answer.dropped_passages)} passage(s)"
            )
        text = yield from self._generate(messages, registry, answer, started)
        answer.text, answer.citations = resolve(text, registry.passages)
        if not answer.citations:
            attributed = attribute(answer.text, registry.passages, self.retriever.embedder)
            if attributed != answer.text:
                answer.text, answer.citations = resolve(attributed, registry.passages)
                answer.attributed = True
        answer.passages = registry.passages
        answer.citation_checks = check_citations(
            answer.text, answer.citations, self.retriever.embedder
        )
        if self.settings.verify_citations_with_model and answer.citation_checks:
            answer.citation_checks = ask_model(answer.citation_checks, answer.citations, self.llm)
        answer.seconds = time.monotonic() - started
        yield answer

    def _fit(
        self, question: str, history: list[Turn], passages: list[Passage], answer: Answer
    ) -> tuple[list[BaseMessage], PassageRegistry]:
        """The request, shortened until it leaves room for the answer: oldest turns first,
        then the lowest-ranked passages. Never truncated silently by the server."""
        by_rank = passages[::-1]  # retrieval order reversed: the first to go is the weakest
        while True:
            registry = PassageRegistry()
            messages = self.messages(
                question, history, stable_order(by_rank), registry, answer.flagged_chunk_ids
            )
            if self.counter is None:
                return messages, registry
            count = self.counter.count(messages)
            answer.prompt_tokens = count.tokens
            if count.tokens + self.settings.max_tokens <= count.max_model_len:
                return messages, registry
            if history:
                history = history[2:]  # one question and its answer
                answer.dropped_turns += 1
            elif len(by_rank) > 1:
                answer.dropped_passages.append(by_rank.pop(0))
            else:
                raise ContextTooLongError(
                    f"The question needs {count.tokens:,} tokens with one passage, and the model "
                    f"takes {count.max_model_len:,} including {self.settings.max_tokens:,} for "
                    "the answer. Ask a shorter question or lower the answer length."
                )

    def _generate(
        self,
        messages: list[BaseMessage],
        registry: PassageRegistry,
        answer: Answer,
        started: float,
    ) -> Generator[Event, None, str]:
        """Stream the model's reply, running tool calls in between when tools are on."""
        rounds = self.settings.max_tool_rounds if self.settings.use_tools else 0
        for round_number in range(rounds + 1):
            llm: Any = self.llm
            if round_number < rounds:
                # strict: vLLM then constrains the arguments to the schema (without it, small models
                # were seen sending a bare string); they are still validated before use.
                llm = self.llm.bind_tools(tool_schemas(), strict=True)
            reply: AIMessageChunk | None = None
            text = ""
            stream = llm.stream(messages)
            pieces = 0  # vLLM streams about a token a piece
            for chunk in stream:
                reply = chunk if reply is None else reply + chunk
                if chunk.content:
                    if answer.ttft_s is None:
                        answer.ttft_s = time.monotonic() - started
                    text += str(chunk.content)
                    pieces += 1
                    yield Token(str(chunk.content))
                    if is_looping(text):
                        stream.close()  # ends the HTTP stream: the server stops generating
                        answer.looped = True
                        answer.output_tokens += pieces  # no usage report when cut
                        yield Status("Stopped an answer that kept repeating itself.")
                        return without_repeats(text)
            if reply is not None and reply.usage_metadata:
                answer.output_tokens += reply.usage_metadata["output_tokens"]
            if reply is None or not (reply.tool_calls or reply.invalid_tool_calls):
                return text
            messages.append(reply)
            for call in reply.tool_calls:
                answer.tool_calls += 1
                yield Status(f"Tool {call['name']}({call['args']})")
                result = run_tool_call(dict(call), self.retriever, registry)
                messages.append(ToolMessage(result, tool_call_id=call.get("id") or ""))
            for bad in reply.invalid_tool_calls:  # arguments that were not JSON at all
                answer.tool_calls += 1
                error = (
                    f"Error: could not parse the arguments of {bad.get('name')}: {bad.get('error')}"
                )
                messages.append(ToolMessage(error, tool_call_id=bad.get("id") or ""))
        return text
