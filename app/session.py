"""What the chat page does, apart from drawing it: the cached chain, the conversation, uploads,
and errors turned into sentences a person can act on.

The page (`app/ui.py`) stays a short top-to-bottom script; everything here can be called
without a browser.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import streamlit as st

from quarry.app.chain import Answer, ChatChain, Event, Status, Token
from quarry.app.conversations import FILE_NAME as CONVERSATIONS_FILE
from quarry.app.conversations import (
    Choices,
    Conversation,
    ConversationStore,
    Message,
    Notice,
    SavedConversation,
)
from quarry.app.errors import explain
from quarry.app.llm import ServerStatus, server_status
from quarry.app.retrieval import Passage
from quarry.app.scope import Scope, scope_options
from quarry.components import Components
from quarry.ingest.collection import StoreError, StoreLocation, list_collections, open_client
from quarry.ingest.loaders import LOADERS
from quarry.ingest.pipeline import ProgressCallback
from quarry.ingest.report import IngestReport
from quarry.settings import QuarrySettings

log = logging.getLogger("quarry.ui")

TEMPERATURE_PRESETS: dict[str, float] = {
    "Factual": 0.0,
    "Technical": 0.3,
    "Conversational": 0.7,
    "Creative": 1.0,
}
UPLOAD_TYPES = tuple(suffix.removeprefix(".") for suffix in LOADERS)  # what ingest can read
MAX_NAME_CHARS = 120


# -- settings the page can change ---------------------------------------------------------


def preset_for(temperature: float) -> str:
    """The preset nearest the configured temperature, so the sidebar starts where config is."""
    return min(TEMPERATURE_PRESETS, key=lambda name: abs(TEMPERATURE_PRESETS[name] - temperature))


def with_choices(
    settings: QuarrySettings, *, collection: str, top_k: int, temperature: float
) -> QuarrySettings:
    """A copy of the settings with the sidebar's choices in it (the chain reads only these)."""
    chat = settings.chat.model_copy(update={"temperature": temperature})
    retrieval = settings.retrieval.model_copy(update={"top_k": top_k})
    ingest_conf = settings.ingest.model_copy(update={"collection": collection})
    return settings.model_copy(update={"chat": chat, "retrieval": retrieval, "ingest": ingest_conf})


# -- cached resources ---------------------------------------------------------------------


@st.cache_resource(show_spinner=False, max_entries=4)
def _components(key: str, _settings: QuarrySettings) -> Components:
    """One set of parts per process and configuration (loading the embedding model takes
    seconds, every rerun would pay): the same Chroma client, models and keyword indexes for
    every browser session. Keyed by the settings as JSON."""
    return Components(_settings)


def components(base: QuarrySettings) -> Components:
    return _components(base.model_dump_json(), base)


def chain_for(base: QuarrySettings, settings: QuarrySettings) -> ChatChain:
    """This browser session's chain for the sidebar's choices (`settings`), built on the
    process's shared parts and warmed, so the first question does not pay for loading.

    Each session has its own chain, so nothing one user's answers leave on it reaches
    another user; the heavy parts under it are shared. Raises as `Components.chain` does; a
    failure is not kept.
    """
    key = settings.model_dump_json()
    held = st.session_state.get("chain")
    if held is None or held[0] != key:
        chain = components(base).with_settings(settings).chain(settings.ingest.collection)
        st.session_state["chain"] = held = (key, chain)
    return held[1]


@st.cache_data(ttl=5, show_spinner=False)
def health(base_url: str, _settings: QuarrySettings) -> ServerStatus:
    """The server's status, asked at most every few seconds rather than on every click."""
    return server_status(_settings, timeout_s=2)


@dataclass(frozen=True)
class CollectionInfo:
    name: str
    documents: int = 0
    chunks: int = 0
    exists: bool = True


def collections(settings: QuarrySettings) -> tuple[list[CollectionInfo], Notice | None]:
    """The collections to offer, the configured one included even before it exists."""
    default = settings.ingest.collection
    try:
        rows = list_collections(open_client(settings), StoreLocation.of(settings))
    except Exception as exc:
        return [CollectionInfo(default, exists=False)], describe(exc)
    found = {r.name: CollectionInfo(r.name, r.documents, r.chunks) for r in rows}
    found.setdefault(default, CollectionInfo(default, exists=False))
    return sorted(found.values(), key=lambda c: c.name), None


# -- the conversation ---------------------------------------------------------------------


# The sidebar's widgets keep their values under these keys, so that opening a conversation
# can set them: in a click's callback or on the page's first run, before they are drawn.
COLLECTION, TOP_K, PRESET, SCOPE = "collection", "top_k", "preset", "scope"
MAX_TOP_K = 20  # the slider's end
ADDRESS_KEY = "c"  # ?c=<id>: the open conversation, so that a reload reopens it


def default_choices(base: QuarrySettings) -> Choices:
    """Where a new chat starts: the configured collection, top-k and temperature."""
    top_k = min(base.retrieval.top_k, MAX_TOP_K)
    return Choices(base.ingest.collection, top_k, preset_for(base.chat.temperature))


def apply_choices(base: QuarrySettings, choices: Choices) -> None:
    """Set the sidebar's widgets to `choices`. A collection deleted since falls back to the
    configured one, and folders or files it no longer holds are dropped."""
    defaults = default_choices(base)
    infos, _ = collections(base)
    collection = choices.collection
    if collection not in {info.name for info in infos}:
        collection = defaults.collection
    options = scope_choices(base, collection)
    st.session_state[COLLECTION] = collection
    st.session_state[TOP_K] = min(max(choices.top_k, 1), MAX_TOP_K)
    preset = choices.preset if choices.preset in TEMPERATURE_PRESETS else defaults.preset
    st.session_state[PRESET] = preset
    st.session_state[SCOPE] = [path for path in choices.scope if path in options]


@st.cache_data(ttl=10, show_spinner=False)
def _scope_options(key: str, collection: str, _base: QuarrySettings) -> list[str]:
    try:
        sources = components(_base).collection(collection).sources()
    except Exception as exc:  # the page says what is wrong with the store elsewhere
        log.info("listing the documents of %s failed: %s", collection, exc)
        return []
    return scope_options(sources.values())


def scope_choices(base: QuarrySettings, collection: str) -> list[str]:
    """What the scope can name in `collection`, asked at most every few seconds. A chosen
    folder or file that is gone is dropped first: the widget refuses values it does not
    offer."""
    options = _scope_options(base.model_dump_json(), collection, base)
    chosen = st.session_state.get(SCOPE, [])
    if any(path not in options for path in chosen):
        st.session_state[SCOPE] = [path for path in chosen if path in options]
    return options


def clear_scope() -> None:
    """Another collection was chosen: a scope names the documents of one collection."""
    st.session_state[SCOPE] = []


@st.cache_resource(show_spinner=False, max_entries=4)
def _store(path: str) -> ConversationStore:
    """One store per file and process; each operation opens its own connection."""
    return ConversationStore(Path(path))


def conversation_store(base: QuarrySettings) -> tuple[ConversationStore | None, Notice | None]:
    """The data folder's saved conversations, or why they cannot be used (the page still
    answers, without saving)."""
    try:
        return _store(str(base.data_dir / CONVERSATIONS_FILE)), None
    except StoreError as exc:
        return None, describe(exc)


def saved_conversations(
    store: ConversationStore | None,
) -> tuple[list[SavedConversation], Notice | None]:
    """The sidebar's list, the most recently asked first, or why it cannot be read."""
    if store is None:
        return [], None
    try:
        return store.list(), None
    except StoreError as exc:
        return [], describe(exc)


def conversation(base: QuarrySettings, store: ConversationStore | None) -> Conversation:
    """This browser session's conversation (each tab has its own): the one the address
    names after a reload or a restart, else the one open, else a new one. The sidebar starts
    at the configured defaults."""
    for key, value in asdict(default_choices(base)).items():
        st.session_state.setdefault(key, value)
    st.session_state.setdefault("conversation", Conversation())
    conv: Conversation = st.session_state.conversation
    if store is None:  # nothing is saved, and the address is kept for when it works again
        return conv
    wanted = st.query_params.get(ADDRESS_KEY)
    if wanted and wanted != conv.id:
        open_conversation(base, wanted)
        conv = st.session_state.conversation
    if conv.messages:
        show_in_address(conv)
    else:  # nothing is saved before the first question; a deleted one is not there
        st.query_params.pop(ADDRESS_KEY, None)
    return conv


def show_in_address(conv: Conversation) -> None:
    """Put the conversation's id in the page's URL, so that a reload reopens it."""
    if st.query_params.get(ADDRESS_KEY) != conv.id:
        st.query_params[ADDRESS_KEY] = conv.id


def conversation_problem() -> Notice | None:
    """Why the last open, rename or delete failed, shown once."""
    notice: Notice | None = st.session_state.pop("conversation_problem", None)
    return notice


def new_chat(base: QuarrySettings) -> None:
    """New chat (a click's callback): an empty conversation, the sidebar at the defaults."""
    st.session_state.conversation = Conversation()
    apply_choices(base, default_choices(base))
    st.query_params.pop(ADDRESS_KEY, None)


def open_conversation(base: QuarrySettings, conversation_id: str) -> None:
    """Open a saved conversation with the sidebar's choices it was asked with."""
    store, problem = conversation_store(base)
    try:
        conv = store.load(conversation_id) if store else None
    except StoreError as exc:
        conv, problem = None, describe(exc)
    if conv is None:
        st.session_state.conversation_problem = problem or Notice(
            "info", "That conversation was deleted; this is a new chat."
        )
        new_chat(base)
        return
    st.session_state.conversation = conv
    apply_choices(base, conv.choices or default_choices(base))
    show_in_address(conv)


def rename_conversation(base: QuarrySettings, conversation_id: str, title_key: str) -> None:
    """The title box changed (a callback): save the new title."""
    store, problem = conversation_store(base)
    try:
        if store is not None:
            title = store.rename(conversation_id, st.session_state[title_key])
            if st.session_state.conversation.id == conversation_id:
                st.session_state.conversation.title = title
    except StoreError as exc:
        problem = describe(exc)
    if problem:
        st.session_state.conversation_problem = problem


def delete_conversation(base: QuarrySettings, conversation_id: str) -> None:
    """Delete a saved conversation; deleting the open one starts a new chat."""
    store, problem = conversation_store(base)
    try:
        if store is not None:
            store.delete(conversation_id)
    except StoreError as exc:
        problem = describe(exc)
    if problem:
        st.session_state.conversation_problem = problem
    elif st.session_state.conversation.id == conversation_id:
        new_chat(base)


def answer(
    conv: Conversation,
    question: str,
    make_chain: Callable[[], ChatChain],
    on_text: Callable[[str], object],
    on_status: Callable[[str], object],
    *,
    scope: Scope | None = None,
    store: ConversationStore | None = None,
) -> Message:
    """Ask, stream the reply into `on_text`, and record both turns in the conversation,
    searching only `scope` when one is given.

    The reply is in the conversation from the start and filled in as it streams. A click
    during the answer (Stop, a new question, New chat) makes Streamlit stop this run at its
    next `st` call and start the next run at once, in another thread, while this one is
    still unwinding: that run must already find the partial answer, which then shows as
    stopped. Errors become a notice on the reply, never an exception.

    With a `store`, the question and the empty reply are saved at once (the first question
    creates the conversation) and the reply again when it ends: finished, failed or stopped.
    """
    history = conv.history()
    reply = Message("assistant")
    first = not conv.messages
    conv.messages += [Message("user", question), reply]
    if store is not None:
        _keep(store.create if first else store.save, conv, reply)
    events: Iterator[Event] | None = None
    try:
        events = make_chain().stream(question, history, scope=scope)
        for event in events:
            if isinstance(event, Token):
                reply.text += event.text
                on_text(reply.text)
            elif isinstance(event, Status):
                reply.notes.append(event.text)
                on_status(event.text)
            elif isinstance(event, Answer):
                _fill(reply, event)
    except Exception as exc:
        reply.notice = describe(exc)
    finally:
        try:
            close = getattr(events, "close", None)
            if close is not None:
                close()  # ends the HTTP stream, so the server stops generating too
        finally:  # a Stop click raises inside on_text: the partial reply is saved too
            if store is not None:
                _keep(store.save, conv, reply)
    return reply


def _keep(save: Callable[[Conversation], None], conv: Conversation, reply: Message) -> None:
    """Save, or say on the reply that it could not be: the answer goes on either way."""
    try:
        save(conv)
    except Exception as exc:
        note = f"Warning: {describe(exc).text}"
        if note not in reply.notes:
            reply.notes.append(note)


def _fill(reply: Message, done: Answer) -> None:
    reply.text = done.text
    reply.citations = list(done.citations)
    reply.passages = list(done.passages)
    reply.ttft_s = done.ttft_s
    reply.tokens_per_s = done.tokens_per_s
    reply.output_tokens = done.output_tokens
    reply.flagged = set(done.flagged_chunk_ids)
    reply.unsupported = {check.number for check in done.unsupported_citations}
    reply.attributed = done.attributed
    reply.removed_citations = done.removed_citations
    reply.evidence = {number: list(spans) for number, spans in done.evidence.items()}
    reply.unsupported_sentences = [(s.start, s.end) for s in done.unsupported]
    reply.finished = True


def source_title(reply: Message, number: int | None, passage: Passage) -> str:
    """An expander's title: the source, and what the checks found wrong with it."""
    title = f"[{number}] {passage.label}" if number is not None else passage.label
    if number in reply.unsupported:
        title += " · :orange[does not seem to support the sentence citing it]"
    if passage.chunk_id in reply.flagged:
        title += " · :red[contains instructions to the assistant, quoted as untrusted data]"
    return title


# -- errors -------------------------------------------------------------------------------


def describe(exc: BaseException) -> Notice:
    """A sentence for the page (the same as the API's); the traceback goes to the log."""
    problem = explain(exc)
    return Notice(problem.kind, problem.text)


# -- uploads ------------------------------------------------------------------------------


class UploadedFile(Protocol):
    """What Streamlit's uploader hands over (and what a test can imitate)."""

    name: str
    size: int

    def getvalue(self) -> bytes: ...


class UploadError(ValueError):
    """A file the page refuses before ingesting: the message names it and says why."""


_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")


def safe_name(name: str) -> str:
    """A file name that stays in its folder: no path parts, no leading dots, plain characters.

    The browser sends whatever name the file had; "../../.bashrc" or "C:\\x\\a.md" must not
    choose where the bytes land.
    """
    base = re.split(r"[\\/]", unicodedata.normalize("NFKC", name))[-1]
    cleaned = _UNSAFE.sub("_", base).strip()
    stem, dot, suffix = cleaned.rpartition(".")
    if not dot:
        stem, suffix = cleaned, ""
    stem = stem.strip(" .") or "upload"
    suffix = suffix.lower()
    if suffix not in UPLOAD_TYPES:
        raise UploadError(f"{name}: not a supported type ({', '.join(UPLOAD_TYPES)})")
    return f"{stem[: MAX_NAME_CHARS - len(suffix) - 1]}.{suffix}"


def upload_folder(settings: QuarrySettings, collection: str) -> Path:
    """Where a collection's uploads are kept, so that they can be ingested again later."""
    root = (settings.data_dir / "uploads").resolve()
    folder = (root / collection).resolve()
    if folder.parent != root:
        raise UploadError(f"collection name {collection!r} cannot name an upload folder")
    return folder


def upload_path(settings: QuarrySettings, collection: str, name: str) -> Path:
    folder = upload_folder(settings, collection)
    path = (folder / safe_name(name)).resolve()
    if path.parent != folder:  # defence in depth: safe_name already removed path parts
        raise UploadError(f"{name}: not a plain file name")
    return path


def file_stem(title: str) -> str:
    """A download's file name from a conversation's title: plain characters only."""
    return _UNSAFE.sub("_", title).strip(" ._")[:MAX_NAME_CHARS] or "conversation"


def max_upload_mb(settings: QuarrySettings) -> int:
    """The size limit shown and enforced: the ingester's own per-file limit."""
    return max(1, int(settings.ingest.max_file_mb))


def save_uploads(
    settings: QuarrySettings, collection: str, files: Iterable[UploadedFile]
) -> tuple[list[Path], list[str]]:
    """Write the accepted files under the upload folder; refused ones come back as reasons."""
    saved: list[Path] = []
    refused: list[str] = []
    limit = max_upload_mb(settings)
    for file in files:
        try:
            if file.size > limit * 2**20:
                raise UploadError(f"{file.name}: larger than {limit} MB")
            path = upload_path(settings, collection, file.name)
        except UploadError as exc:
            refused.append(str(exc))
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(file.getvalue())
        saved.append(path)
    return saved, refused


def add_uploads(
    parts: Components,
    files: Sequence[UploadedFile],
    on_progress: ProgressCallback | None = None,
) -> tuple[IngestReport | None, list[str]]:
    """Save and ingest uploads into the collection `parts` are set for; problems come back
    as sentences (a refused file, a file the loader could not read, a busy store)."""
    settings = parts.settings
    collection = settings.ingest.collection
    report = None
    try:
        saved, problems = save_uploads(settings, collection, files)
        if saved:
            # A collection keeps the model it was built with; new files must use the same one.
            embedder = parts.collection_embedder(collection)
            report = parts.ingest(saved, embedder=embedder, on_progress=on_progress)
            _scope_options.clear()  # the scope can name the new files at once
            problems += [
                f"{o.path}: {o.status}" + (f", {o.reason}" if o.reason else "")
                for o in report.problems()
            ]
    except Exception as exc:
        return report, [describe(exc).text]
    return report, problems
