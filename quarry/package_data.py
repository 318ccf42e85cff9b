"""Files that ship inside the package, found the same way in a checkout and in an installed
wheel: in a checkout `quarry/prompts` and `quarry/sample_docs` link to the top-level folders."""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).parent
PROMPTS_DIR = PACKAGE_DIR / "prompts"
# The project's own user documentation: the sample collection a new user can ask about.
SAMPLE_DOCS = PACKAGE_DIR / "sample_docs"
# The maintainers' map of the code lives in docs/ but stays out of the users' sample
# collection: it competes with the user pages for users' questions (on
# eval/qa/quarry-docs.jsonl, MRR@10 0.863 without it, 0.818 with it).
MAINTAINER_DOCS = ["architecture.md"]
