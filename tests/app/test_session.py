"""The chat page's logic without a browser or a server: upload names, errors, memory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest

from quarry.app.budget import ContextTooLongError
from quarry.app.chain import Turn
from quarry.app.errors import CONTEXT_TOO_LONG
from quarry.app.retrieval import EmptyCollectionError, Passage
from quarry.app.scope import Scope, ScopeError
from quarry.app.session import (
    Conversation,
    Message,
    UploadError,
    describe,
    file_stem,
    preset_for,
    safe_name,
    save_uploads,
    source_title,
    upload_folder,
    upload_path,
)
from quarry.settings import load_settings


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("notes.md", "notes.md"),
        ("../../escape.md", "escape.md"),
        ("/etc/cron.d/job.txt", "job.txt"),
        ("..\\..\\windows\\evil.TXT", "evil.txt"),
        (".bashrc.md", "bashrc.md"),
        ("....md", "upload.md"),
        ("a\x00b;rm -rf $HOME.pdf", "a_b_rm -rf _HOME.pdf"),
        ("\u2025\uff0fsecret.md", "secret.md"),  # NFKC: two dots and a full-width slash
        ("Résumé 2024.docx", "R_sum_ 2024.docx"),
        ("x" * 300 + ".html", "x" * 115 + ".html"),
    ],
)
def test_upload_names_cannot_leave_the_upload_folder(sent: str, kept: str) -> None:
    assert safe_name(sent) == kept


@pytest.mark.parametrize("sent", ["run.sh", "archive.md.exe", "..", "../", "README"])
def test_unsupported_upload_names_are_refused(sent: str) -> None:
    with pytest.raises(UploadError, match="not a supported type"):
        safe_name(sent)


def test_uploads_land_under_data_dir_uploads_collection(tmp_path: Path) -> None:
    settings = load_settings(profile="cpu", data_dir=tmp_path)
    assert upload_path(settings, "notes", "../../x.md") == tmp_path / "uploads/notes/x.md"
    for collection in ("..", "../other", "a/b", ""):
        with pytest.raises(UploadError):
            upload_folder(settings, collection)


@dataclass
class Upload:
    name: str
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)

    def getvalue(self) -> bytes:
        return self.data


def test_oversized_and_unsupported_uploads_are_refused_by_name(tmp_path: Path) -> None:
    settings = load_settings(profile="cpu", data_dir=tmp_path, ingest={"max_file_mb": 1})
    files = [Upload("ok.md", b"# ok"), Upload("big.pdf", b"x" * (2**20 + 1)), Upload("a.exe", b"")]
    saved, refused = save_uploads(settings, "notes", files)
    assert saved == [tmp_path / "uploads/notes/ok.md"]
    assert refused == [
        "big.pdf: larger than 1 MB",
        "a.exe: not a supported type (md, markdown, txt, text, rst, rest, html, htm, pdf, docx)",
    ]


def _bad_request(message: str) -> openai.BadRequestError:
    response = httpx.Response(400, request=httpx.Request("POST", "http://127.0.0.1/v1/chat"))
    return openai.BadRequestError(message, response=response, body=None)


def test_errors_become_sentences_for_the_page() -> None:
    too_long = _bad_request("This model's maximum context length is 2048 tokens. However...")
    assert describe(too_long).text == CONTEXT_TOO_LONG
    assert describe(ConnectionError("No model server answers at x")).text.startswith("No model")
    lost = describe(httpx.ConnectError("refused"))
    assert lost.text.startswith("The model server stopped answering")
    assert describe(EmptyCollectionError("empty")).kind == "info"
    assert describe(ContextTooLongError("The question needs 3,000 tokens")).kind == "error"
    other = describe(_bad_request("temperature must be at most 2"))
    assert other.text.startswith("The model server refused the request (400)")
    assert describe(RuntimeError("boom")).text == "Something went wrong: RuntimeError: boom"


def test_a_scope_that_covers_nothing_is_a_sentence_for_the_page() -> None:
    sources = {"docs:guide/install.md": "guide/install.md", "docs:notes.md": "notes.md"}
    scope = Scope.of(["contracts/2024/"])
    assert scope is not None
    with pytest.raises(ScopeError) as raised:
        scope.documents(sources, "docs")
    notice = describe(raised.value)
    assert notice.kind == "error"
    assert notice.text == (
        'No document of the collection "docs" is under contracts/2024/. Choose folders or '
        "files it holds (for example guide/, guide/install.md, notes.md), or clear the scope."
    )


def test_download_names_are_plain() -> None:
    assert file_stem("How do I stop Quarry?") == "How do I stop Quarry"
    assert file_stem("../../etc/passwd") == "etc_passwd"
    assert file_stem("???") == "conversation"


def test_only_finished_answers_are_remembered() -> None:
    conv = Conversation(
        [
            Message("user", "first?"),
            Message("assistant", "one [1]", finished=True),
            Message("user", "second?"),
            Message("assistant", "half"),  # stopped: neither finished nor failed
            Message("user", "third?"),
            Message("assistant", notice=describe(ConnectionError("down"))),
        ]
    )
    assert conv.history() == [Turn("user", "first?"), Turn("assistant", "one [1]")]


def test_the_sidebar_starts_at_the_preset_nearest_the_configured_temperature() -> None:
    assert [preset_for(t) for t in (0, 0.2, 0.3, 0.8, 2)] == [
        "Factual",
        "Technical",
        "Technical",
        "Conversational",
        "Creative",
    ]


def test_source_titles_say_what_the_checks_found() -> None:
    passage = Passage("c7", "text", "notes.md", "", "Setup", None, 0, 0.5)
    reply = Message("assistant", flagged={"c7"}, unsupported={2})
    assert source_title(reply, 1, passage) == (
        "[1] notes.md, Setup · :red[contains instructions to the assistant, quoted as "
        "untrusted data]"
    )
    clean = Message("assistant", unsupported={2})
    assert "does not seem to support" in source_title(clean, 2, passage)
    assert source_title(clean, None, passage) == "notes.md, Setup"
