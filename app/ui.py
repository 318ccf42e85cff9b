"""Quarry's chat page: ask the documents of a collection, with cited, streamed answers.

Started by `quarry chat` / `quarry up`, or `streamlit run app/ui.py`; settings come from
QUARRY_* variables like everywhere else. Everything that is not layout is in app/session.py.
"""

from __future__ import annotations

import streamlit as st

from quarry.app import render, session
from quarry.app.conversations import Choices, to_markdown
from quarry.app.scope import Scope
from quarry.app.session import Message
from quarry.ingest.pipeline import Progress
from quarry.settings import SettingsError, load_settings

st.set_page_config(page_title="Quarry", page_icon=":material/chat:")

try:
    base = load_settings()
except SettingsError as exc:
    st.error(str(exc))
    st.stop()

store, store_problem = session.conversation_store(base)
conv = session.conversation(base, store)  # before the sidebar: it may set the widgets
presets = session.TEMPERATURE_PRESETS
upload_round = st.session_state.setdefault("upload_round", 0)

with st.sidebar:
    st.header("Quarry")
    server = session.health(base.server.base_url, base)
    if server.healthy:
        st.success(f"Model server is up · {', '.join(server.models)}", icon=":material/dns:")
    else:
        st.error(server.error, icon=":material/dns:")

    infos, problem = session.collections(base)
    if problem:
        st.error(problem.text)
    names = [c.name for c in infos]
    collection = st.selectbox(
        "Collection", names, key=session.COLLECTION, on_change=session.clear_scope
    )
    info = infos[names.index(collection)]
    st.caption(
        f"{info.documents} documents, {info.chunks} chunks"
        if info.exists
        else "Not created yet: add documents below."
    )
    options = session.scope_choices(base, collection)
    paths = st.multiselect(
        "Only these folders or files",
        options,
        key=session.SCOPE,
        placeholder="The whole collection" if options else "No documents yet",
        disabled=not options,
    )
    scope = Scope.of(paths)
    top_k = st.slider("Passages per question (top-k)", 1, session.MAX_TOP_K, key=session.TOP_K)
    preset = st.radio(
        "Temperature",
        list(presets),
        key=session.PRESET,
        format_func=lambda name: f"{name} ({presets[name]:.1f})",
    )
    settings = session.with_choices(
        base, collection=collection, top_k=top_k, temperature=presets[preset]
    )

    st.subheader("Conversations")
    saved_conversations, list_problem = session.saved_conversations(store)
    for problem in (store_problem, list_problem, session.conversation_problem()):
        if problem:
            (st.error if problem.kind == "error" else st.info)(problem.text)
    st.button(
        "New chat",
        icon=":material/add_comment:",
        on_click=session.new_chat,
        args=(base,),
        width="stretch",
    )
    for saved in saved_conversations:
        st.button(
            saved.title,
            key=f"open-{saved.id}",
            type="primary" if saved.id == conv.id else "tertiary",
            on_click=session.open_conversation,
            args=(base, saved.id),
            width="stretch",
        )
    if store and conv.messages:
        with st.expander("Rename, export or delete"):
            title_key = f"title-{conv.id}"
            st.text_input(
                "Title",
                value=conv.title,
                key=title_key,
                on_change=session.rename_conversation,
                args=(base, conv.id, title_key),
            )
            st.download_button(
                "Export as Markdown",
                to_markdown(conv),
                file_name=f"{session.file_stem(conv.title)}.md",
                mime="text/markdown",
                icon=":material/download:",
                on_click="ignore",
                width="stretch",
            )
            st.button(
                "Delete this conversation",
                icon=":material/delete:",
                key="delete",
                on_click=session.delete_conversation,
                args=(base, conv.id),
                width="stretch",
            )

    st.subheader("Add documents")
    limit = session.max_upload_mb(settings)
    files = st.file_uploader(
        f"Into “{collection}”, up to {limit} MB each",
        type=[f".{suffix}" for suffix in session.UPLOAD_TYPES],  # a bare "text" is text/*
        accept_multiple_files=True,
        max_upload_size=limit,
        key=f"upload-{upload_round}",
    )
    if st.button("Add to collection", disabled=not files, key="add"):
        bar = st.progress(0.0, text="Reading the files...")

        def progress(p: Progress) -> None:
            done = f"{p.files_done} of {p.files_total} files, {p.chunks_embedded} chunks embedded"
            bar.progress(p.files_done / max(p.files_total, 1), text=done)

        parts = session.components(base).with_settings(settings)
        report, problems = session.add_uploads(parts, files or [], on_progress=progress)
        st.session_state.upload_result = (report.summary() if report else "", problems)
        st.session_state.upload_round = upload_round + 1  # a fresh, empty upload box
        st.rerun()
    if "upload_result" in st.session_state:
        summary, problems = st.session_state.upload_result
        if summary:
            st.success(summary)
        for line in problems:
            st.warning(line)


def show_reply(message: Message) -> None:
    """An answer's text, its sources, notes and speed, or the message that replaced it."""
    for note in message.notes:  # what the chain did first: the rewritten search, cuts
        (st.warning if note.startswith("Warning:") else st.caption)(note)
    if message.text:
        st.markdown(render.answer_markdown(message.text, message.unsupported_sentences))
        if message.unsupported_sentences:
            st.caption(
                ":orange[Sentences marked “not found in the sources” are the model's own: no "
                "passage below supports them.]"
            )
    if message.notice:
        (st.error if message.notice.kind == "error" else st.info)(message.notice.text)
    if message.stopped:
        st.caption(":material/stop_circle: Stopped: the answer is incomplete.")
    if message.citations:
        st.markdown("**Sources**")
        if message.attributed:
            st.caption("Citation numbers were matched to the passages that support each sentence.")
        if message.removed_citations:
            st.caption(
                f"{message.removed_citations} citation(s) the model wrote were removed: their "
                "passage does not support the sentence."
            )
        for citation in message.citations:
            spans = message.evidence.get(citation.number, [])
            with st.expander(
                session.source_title(message, citation.number, citation.passage),
                expanded=bool(spans) and citation == message.citations[0],
            ):
                st.markdown(render.passage_markdown(citation.passage.text, spans))
    elif message.passages:  # a small model may not cite: still show what it was given
        st.markdown("**Passages searched** (the answer cites none)")
        for passage in message.passages:
            with st.expander(session.source_title(message, None, passage)):
                st.markdown(render.passage_markdown(passage.text))
    if message.metrics:
        st.caption(message.metrics)


if server.healthy and info.exists:
    try:
        with st.spinner("Getting ready: loading the embedding model and the collection..."):
            session.chain_for(base, settings)  # kept: later reruns return at once
    except Exception as exc:  # the same error comes back, explained, with the first question
        session.log.info("warming the chain failed: %s", exc)

st.title("Ask your documents")
only = f" · only {scope.describe()}" if scope else ""
st.caption(f"Searching “{collection}”{only} · top-k {top_k} · {preset.lower()}")

for message in conv.messages:
    with st.chat_message(message.role):
        if message.role == "user":
            st.markdown(message.text)
        else:
            show_reply(message)

if question := st.chat_input("Ask a question about your documents"):
    with st.chat_message("user"):
        st.markdown(question)
    with st.chat_message("assistant"):
        stop = st.empty()
        stop.button("Stop", icon=":material/stop:", key="stop")  # a click reruns: see answer()
        status, text = st.empty(), st.empty()
        status.caption("Searching the documents...")
        conv.choices = Choices(collection, top_k, preset, list(paths))
        if store:
            session.show_in_address(conv)  # saved with the question: a reload reopens it
        reply = session.answer(
            conv,
            question,
            lambda: session.chain_for(base, settings),
            on_text=lambda so_far: text.markdown(render.answer_markdown(so_far) + "▌"),
            on_status=lambda note: status.caption(note),
            scope=scope,
            store=store,
        )
        for slot in (stop, status, text):
            slot.empty()
        show_reply(reply)
    if store:
        st.rerun()  # the sidebar lists the conversation, first, with its title
