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
