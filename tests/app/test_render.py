"""What the page makes of an answer's and a passage's Markdown."""

from __future__ import annotations

from quarry.app.render import UNSUPPORTED_BADGE, answer_markdown, passage_markdown, quiet_headings
from quarry.app.sentences import split_sentences


def test_headings_are_shown_as_bold_lines() -> None:
    text = "# Changing the port\n\nUse --port.\n## Chat page ##\n#hashtag stays"
    assert quiet_headings(text) == (
        "**Changing the port**\n\nUse --port.\n**Chat page**\n#hashtag stays"
    )


def test_code_blocks_stay_code_blocks() -> None:
    text = "## Start it\n```bash\n# start the server\nquarry serve\n```\n~~~\n# also code\n~~~"
    assert quiet_headings(text) == (
        "**Start it**\n```bash\n# start the server\nquarry serve\n```\n~~~\n# also code\n~~~"
    )


def test_a_model_s_heading_reads_as_part_of_the_answer() -> None:
    shown = answer_markdown("## Changing the port\nPass `--port 8001` to `quarry serve`.")
    assert shown == "**Changing the port**\nPass `--port 8001` to `quarry serve`."


def test_sentences_no_passage_supports_are_marked() -> None:
    answer = "Pass --port 8001 [1]. It only works on Tuesdays."
    invented = split_sentences(answer)[1]
    shown = answer_markdown(answer, [(invented.start, invented.end)])
    assert shown == f"Pass --port 8001 [1]. It only works on Tuesdays. {UNSUPPORTED_BADGE}"


def test_evidence_is_highlighted_inside_its_passage() -> None:
    passage = "## Ports\nThe server listens on 8000.\nSet QUARRY_SERVER_PORT\nto move it. $5 [x]."
    evidence = split_sentences(passage)[2]
    assert evidence.text == "Set QUARRY_SERVER_PORT\nto move it."
    shown = passage_markdown(passage, [(evidence.start, evidence.end)])
    assert shown == (
        "**Ports**\nThe server listens on 8000.\n"
        ":yellow-background[Set QUARRY_SERVER_PORT to move it.] \\$5 [x]."
    )


def test_brackets_inside_evidence_cannot_end_the_highlight_early() -> None:
    passage = "Cite as [1] or [2][3] after the sentence."
    shown = passage_markdown(passage, [(0, len(passage))])
    assert shown == ":yellow-background[Cite as \\[1\\] or \\[2\\]\\[3\\] after the sentence.]"


PORT_SECTION = (
    "## Changing the port of the model server\n\n"
    "The model server listens on port 8000 by default. Change it with the `--port` flag of\n"
    "`quarry serve`, with the variable `QUARRY_SERVER_PORT=8001`, or in `quarry.toml`:\n\n"
    "```toml\n[server]\nport = 8001\n```\n\n"
    "The chat page reads the same setting, so both agree on where the server is.\n"
)
TOML_BLOCK = "\n\n```toml\n[server]\nport = 8001\n```\n\n"


def test_evidence_on_both_sides_of_a_code_block_leaves_the_block_intact() -> None:
    # The sentences before and after the block are neighbours (the block has none), so the
    # evidence finder merges them into one span that crosses the fence.
    _, _, flag, reads = split_sentences(PORT_SECTION)
    shown = passage_markdown(PORT_SECTION, [(flag.start, reads.end)])
    assert shown == (
        "**Changing the port of the model server**\n\n"
        "The model server listens on port 8000 by default. :yellow-background[Change it with "
        "the `--port` flag of `quarry serve`, with the variable `QUARRY_SERVER_PORT=8001`, or in "
        f"`quarry.toml`:]{TOML_BLOCK}"
        ":yellow-background[The chat page reads the same setting, so both agree on where the "
        "server is.]\n"
    )


def test_a_span_that_ends_inside_a_code_block_highlights_only_its_prose() -> None:
    flag = split_sentences(PORT_SECTION)[2]
    shown = passage_markdown(PORT_SECTION, [(flag.start, PORT_SECTION.index("8001\n```"))])
    before, block, after = shown.partition(TOML_BLOCK)
    assert block and before.endswith("`quarry.toml`:]")
    assert after == "The chat page reads the same setting, so both agree on where the server is.\n"


def test_lists_quotes_tables_and_indented_code_keep_their_structure() -> None:
    passage = (
        "- Run `quarry ingest [docs]`.\n- Set $PORT,\n  then start it.\n\n> A quote.\n\n"
        "| setting | default |\n|---|---|\n| `top_k` | 4 |\n\n    quarry serve --port 8001\n"
    )
    shown = passage_markdown(passage, [(0, len(passage))])
    assert shown == (
        "- :yellow-background[Run `quarry ingest [docs]`.]\n"
        "- :yellow-background[Set \\$PORT, then start it.]\n\n"
        "> :yellow-background[A quote.]\n\n"
        "| :yellow-background[setting] | :yellow-background[default] |\n|---|---|\n"
        "| :yellow-background[`top_k`] | :yellow-background[4] |\n\n"
        "    quarry serve --port 8001\n"
    )


def test_code_inside_evidence_keeps_its_brackets() -> None:
    passage = "The `[retrieval]` table and `a]` are settings [1]."
    shown = passage_markdown(passage, [(0, len(passage))])
    # Balanced brackets in code are safe in the label; "a]" would end it, so it stays out.
    assert shown == (
        ":yellow-background[The `[retrieval]` table and] `a]` "
        ":yellow-background[are settings \\[1\\].]"
    )


def test_dollars_in_code_are_shown_as_written() -> None:
    text = "It costs $5; run `echo $HOME` or:\n```bash\necho $HOME\n```\n    $ quarry serve"
    expected = "It costs \\$5; run `echo $HOME` or:\n```bash\necho $HOME\n```\n    $ quarry serve"
    assert passage_markdown(text) == expected
    assert answer_markdown(text) == expected


def test_an_unsupported_table_row_gets_its_badge_inside_the_row() -> None:
    # After the last "|" the badge would be an extra cell, which GFM drops unseen.
    answer = "| flag | use |\n|---|---|\n| --port | moves the chat page to Mars |\n"
    row = split_sentences(answer)[-1]
    assert row.text == "| --port | moves the chat page to Mars |"
    shown = answer_markdown(answer, [(row.start, row.end)])
    assert shown == (
        f"| flag | use |\n|---|---|\n| --port | moves the chat page to Mars {UNSUPPORTED_BADGE} |\n"
    )
