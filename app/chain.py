"""The chat chain: retrieve, answer with citations, streaming.

A follow-up is searched as it is and joined with the questions before it, the rankings
fused: no model call stands between the question and the first token of the answer (a
rewrite by the small model broke retrieval more often than it helped; docs/decisions.md).

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

from quarry.app import learned_screen
from quarry.app.budget import ContextTooLongError, TokenCounter
from quarry.app.citation_check import (
    CitationCheck,
    ask_model,
    attribute,
    check_citations,
    find_evidence,
    unsupported_sentences,
    without_unsupported,
)
from quarry.app.citations import Citation, resolve
from quarry.app.context import focus
from quarry.app.injection_classifier import InjectionClassifier
from quarry.app.prompts import render
from quarry.app.retrieval import Passage, Searcher
from quarry.app.scope import Scope
from quarry.app.screening import Screen, screen, screen_batch
from quarry.app.sentences import Sentence, split_sentences
from quarry.app.tools import PassageRegistry, run_tool_call, tool_schemas
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
    prompt_tokens: int = 0  # counted before asking, when the request was near the limit
    input_tokens: int = 0  # as the server reported them, over every request of the answer
    finish_reason: str = "stop"  # "length" when the answer reached max_tokens
    dropped_turns: int = 0  # history left out to fit the model's length
    dropped_passages: list[Passage] = field(default_factory=list)
    # Screening: the question looked like a jailbreak (warned, not blocked); passages that
    # carry instructions (quoted to the model as untrusted data).
    question_screen: Screen | None = None
    flagged_chunk_ids: set[str] = field(default_factory=set)
    screening_fallback: str = ""  # why the configured classifier did not screen this answer
    citation_checks: list[CitationCheck] = field(default_factory=list)
    attributed: bool = False  # some markers were added by Quarry, not written by the model
    removed_citations: int = 0  # markers the model wrote whose passage does not support them
    # Where, inside each cited passage, the sentences that support the answer are (offsets
    # into the passage's text), and the answer's sentences that no passage supports.
    evidence: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    unsupported: list[Sentence] = field(default_factory=list)

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


LOOP_REPEATS = 3  # the same sentence this many times: small models rarely recover
MAX_PREVIOUS_QUESTIONS = 3  # joined with a follow-up to search for it


def _key(sentence: Sentence) -> str:
    return " ".join(sentence.text.split()).lower()


class LoopDetector:
    """Counts the answer's complete sentences as it streams, reading each sentence once: a
    small model that writes one sentence LOOP_REPEATS times is cut short."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._read = 0  # the text before this offset is counted

    def repeating(self, text: str) -> bool:
        """Whether `text` (the answer so far) repeats itself, counting what is new."""
        tail = text[self._read :]
        sentences = split_sentences(tail)
        if sentences and not tail.endswith("\n") and not tail.rstrip().endswith((".", "!", "?")):
            sentences = sentences[:-1]  # still being written
        if not sentences:
            return False
        self._read += sentences[-1].end
        for sentence in sentences:
            key = _key(sentence)
            if len(key) >= 12:
                self._counts[key] = self._counts.get(key, 0) + 1
                if self._counts[key] >= LOOP_REPEATS:
                    return True
        return False


def is_looping(text: str) -> bool:
    """True when a complete sentence of some length appears LOOP_REPEATS times in `text`."""
    return LoopDetector().repeating(text)


def without_repeats(text: str) -> str:
    """The text with each repeated sentence kept once, where it first appeared."""
    seen: set[str] = set()
    out, position = [], 0
    for sentence in split_sentences(text):
        key = _key(sentence)
        if len(key) >= 12 and key in seen:
            out.append(text[position : sentence.start])
            position = sentence.end
            continue
        seen.add(key)
    out.append(text[position:])
    return re.sub(r"\n{3,}", "\n\n", "".join(out)).strip()


# Words by which a question leans on the conversation before it ("that", "and the page?").
_LEANS_ON_CONTEXT = re.compile(
    r"\b(it|its|that|this|these|those|them|they|their|there|then|one|ones|same|also|too|else|"
    r"instead|other|another|former|latter|above|before|previous|again|so)\b"
    r"|^\s*(and|but|or|what about|how about)\b",
    re.IGNORECASE,
)


def leans_on_context(question: str) -> bool:
    return bool(_LEANS_ON_CONTEXT.search(question))


def search_queries(question: str, history: Sequence[Turn]) -> list[str]:
    """For a follow-up, the question joined with the ones before it, then the question alone.

    "And the chat page?" alone finds little; joined with "How do I change the port of the
    model server?" it finds the chat page's port. Both are searched and their rankings fused,
    so what the question alone finds still ranks; the joined phrasing comes first, so it wins
    fusion's ties (see `Retriever.search_many`). A question that does not lean on the
    conversation ("What is the capital of Australia?") is searched alone: joined with earlier
    questions about the documents it would always clear the abstention threshold, and be
    answered from passages that do not answer it.
    """
    previous = [t.content for t in history if t.role == "user"][-MAX_PREVIOUS_QUESTIONS:]
    if not previous or not leans_on_context(question):
        return [question]
    return [" ".join([*previous, question]), question]


def _ends_sentence(piece: str) -> bool:
    return any(mark in piece for mark in ".!?\n")


def stable_order(passages: Sequence[Passage]) -> list[Passage]:
    """Document order: the same retrieved set always renders to the same prompt text."""
    return sorted(passages, key=lambda p: p.order_key)


class ChatChain:
    def __init__(
        self,
        llm: ChatOpenAI,
        retriever: Searcher,
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
        self.system_prompt = render("system", prompt_set=settings.prompt_set)

    def warm(self) -> None:
        """Load what the first question needs (embedding model, Chroma, keyword index, the
        server's tokenizer, the learned screen), so that the first answer starts as fast as
        the next ones."""
        self.retriever.warm()
        learned_screen.warm()
        if self.counter is not None:
            self.counter.count([SystemMessage(self.system_prompt)])

    def messages(
        self,
        question: str,
        history: Sequence[Turn],
        passages: Sequence[Passage],
        registry: PassageRegistry,
        flagged: Collection[str] | None = None,
        texts: dict[str, str] | None = None,
    ) -> list[BaseMessage]:
        """The request, laid out so that each turn's prefix is the previous turn's prefix.

        `flagged`: chunk ids screened as carrying instructions; None screens offline here.
        `texts`: what the model reads of each passage (see app/context.py); whole passages
        when None, and a passage missing from it is numbered but not sent."""
        if flagged is None:
            flagged = {p.chunk_id for p in passages if screen(p.text, source="passage").flagged}
        if texts is None:
            texts = {p.chunk_id: p.text for p in passages}
        numbered = [(registry.number(p), p) for p in passages]
        prompt = render(
            "answer",
            prompt_set=self.settings.prompt_set,
            question=question,
            passages=[
                {
                    "number": number,
                    "label": p.label,
                    "text": texts[p.chunk_id],
                    "flagged": p.chunk_id in flagged,
                }
                for number, p in numbered
                if p.chunk_id in texts
            ],
        )
        return [SystemMessage(self.system_prompt), *history_messages(history), HumanMessage(prompt)]

    def stream(
        self, question: str, history: Sequence[Turn] = (), scope: Scope | None = None
    ) -> Iterator[Event]:
        """The answer's events: status notes, tokens as they stream, then the checked Answer.
        `scope` limits every search, the model's tool calls included, to some documents."""
        started = time.monotonic()
        retriever = self.retriever.within(scope)
        passages = retriever.search_many(search_queries(question, history), retriever.top_k)
        screens = screen_batch(question, [p.text for p in passages], self.classifier)
        if screens.warning:  # on every answer so screened: each user sees it on their own
            yield Status(f"Warning: {screens.warning}")
        question_screen = screens.question
        if question_screen.flagged:
            yield Status(
                "Warning: this message looks like an attempt to change the assistant's "
                f"instructions ({'; '.join(question_screen.reasons)}). Answering from the "
                "documents as usual."
            )
        if not passages and not self.settings.use_tools:
            text = render(
                "no_answer", collection=self.collection, scope=scope.describe() if scope else ""
            )
            yield Token(text)
            yield Answer(
                text,
                question,
                [],
                refused=True,
                seconds=time.monotonic() - started,
                question_screen=question_screen,
                screening_fallback=screens.fallback,
            )
            return

        answer = Answer(
            "", question, [], question_screen=question_screen, screening_fallback=screens.fallback
        )
        answer.flagged_chunk_ids = {
            p.chunk_id for p, s in zip(passages, screens.passages, strict=True) if s.flagged
        }
        texts = focus(question, passages, self.settings.context_sentences)
        messages, registry = self._fit(question, list(history), passages, answer, texts)
        if answer.dropped_turns or answer.dropped_passages:
            yield Status(
                f"Left out to fit the model: {answer.dropped_turns} earlier turn(s), "
                f"{len(answer.dropped_passages)} passage(s)"
            )
        text = yield from self._generate(messages, registry, answer, started, retriever)
        answer.passages = registry.passages
        self._cite(answer, text)
        answer.seconds = time.monotonic() - started
        yield answer

    def _cite(self, answer: Answer, text: str) -> None:
        """Citations the passages bear out: the model's markers that its passage does not
        support are removed, sentences without one get the passage that supports them
        (marked as added by Quarry), and what remains unsupported is listed."""
        embedder, passages = self.retriever.embedder, answer.passages
        text, citations = resolve(text, passages)
        written = check_citations(text, citations, embedder)
        answer.removed_citations = sum(not c.supported for c in written)
        text = without_unsupported(text, written)
        cited = attribute(text, passages, embedder)
        answer.attributed = cited != text
        answer.text, answer.citations = resolve(cited, passages)
        answer.citation_checks = check_citations(answer.text, answer.citations, embedder)
        if self.settings.verify_citations_with_model and answer.citation_checks:
            answer.citation_checks = ask_model(answer.citation_checks, answer.citations, self.llm)
        answer.evidence = find_evidence(answer.text, answer.citations, embedder)
        answer.unsupported = unsupported_sentences(answer.text, passages, embedder)

    def _fit(
        self,
        question: str,
        history: list[Turn],
        passages: list[Passage],
        answer: Answer,
        texts: dict[str, str],
    ) -> tuple[list[BaseMessage], PassageRegistry]:
        """The request, shortened until it leaves room for the answer: oldest turns first,
        then the lowest-ranked passages. Never truncated silently by the server."""
        by_rank = passages[::-1]  # retrieval order reversed: the first to go is the weakest
        while True:
            registry = PassageRegistry()
            messages = self.messages(
                question, history, stable_order(by_rank), registry, answer.flagged_chunk_ids, texts
            )
            if self.counter is None or self.counter.surely_fits(messages, self.settings.max_tokens):
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
        retriever: Searcher,
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
            stream = llm.stream(messages, stop=self.settings.stop or None)
            pieces = 0  # vLLM streams about a token a piece
            loop = LoopDetector()
            for chunk in stream:
                reply = chunk if reply is None else reply + chunk
                if chunk.content:
                    if answer.ttft_s is None:
                        answer.ttft_s = time.monotonic() - started
                    text += str(chunk.content)
                    pieces += 1
                    yield Token(str(chunk.content))
                    if _ends_sentence(str(chunk.content)) and loop.repeating(text):
                        stream.close()  # ends the HTTP stream: the server stops generating
                        answer.output_tokens += pieces  # no usage report when cut
                        yield Status("Stopped an answer that kept repeating itself.")
                        return without_repeats(text)
            if reply is not None and reply.usage_metadata:
                answer.output_tokens += reply.usage_metadata["output_tokens"]
                answer.input_tokens += reply.usage_metadata["input_tokens"]
            if reply is not None:
                answer.finish_reason = str(reply.response_metadata.get("finish_reason") or "stop")
            if reply is None or not (reply.tool_calls or reply.invalid_tool_calls):
                return text
            messages.append(reply)
            for call in reply.tool_calls:
                answer.tool_calls += 1
                yield Status(f"Tool {call['name']}({call['args']})")
                result = run_tool_call(dict(call), retriever, registry)
                messages.append(ToolMessage(result, tool_call_id=call.get("id") or ""))
            for bad in reply.invalid_tool_calls:  # arguments that were not JSON at all
                answer.tool_calls += 1
                error = (
                    f"Error: could not parse the arguments of {bad.get('name')}: {bad.get('error')}"
                )
                messages.append(ToolMessage(error, tool_call_id=bad.get("id") or ""))
        return text
