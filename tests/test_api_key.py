"""A server that requires an API key: refused without it, and the chat sends it."""

from __future__ import annotations

from pathlib import Path

import pytest

from quarry.app.llm import server_status
from quarry.components import Components
from quarry.settings import QuarrySettings, load_settings
from tests.conftest import (
    SAMPLE,
    free_port,
    server_env,
    start_quarry_serve,
    stop_with_ctrl_c,
    wait_until_ready,
)

pytestmark = pytest.mark.server

KEY = "quarry-test-key"


def test_the_key_is_required_and_the_chat_sends_it(
    tmp_path: Path, sample_settings: QuarrySettings, sample_retriever: object
) -> None:
    port = free_port()
    env = {**server_env(tmp_path, port), "QUARRY_SERVER_API_KEY": KEY}
    serve = start_quarry_serve(env)
    try:
        wait_until_ready(serve)
        assert KEY not in serve.log_text()  # the printed command shows a variable instead
        without = load_settings(profile="cpu", server={"port": port})
        status = server_status(without)
        assert not status.healthy and "wants an API key" in status.error

        with_key = load_settings(
            profile="cpu",
            data_dir=sample_settings.data_dir,
            server={"port": port, "api_key": KEY},
            chat={"max_tokens": 16},
        )
        assert server_status(with_key).healthy
        *_, answer = Components(with_key).chain(SAMPLE).stream("How do I stop Quarry?")
        assert answer.text  # type: ignore[union-attr]
    finally:
        stop_with_ctrl_c(serve, port)
