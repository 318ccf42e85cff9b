"""`quarry eval retrieval`, `answers`, `followups`, ...: numbers that can gate a change.

Exit codes: 0 when every threshold given is met, 1 when one is missed, 2 for usage errors
(a bad question set, a missing collection, a server that is down).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from quarry.components import Components
from quarry.console import console, err_console, fail, settings_or_exit
from quarry.eval.qa import QaItem, QaSetError, load_conversations, load_qa
from quarry.settings import QuarrySettings, RetrievalSettings

eval_app = typer.Typer(help="Evaluate retrieval and answers on a labelled question set.")

SHIPPED_QA = Path(__file__).resolve().parent / "qa" / "quarry-docs.jsonl"
SHIPPED_FOLLOWUPS = SHIPPED_QA.with_name("followups-docs.jsonl")

CollectionOpt = Annotated[str, typer.Option("--collection", "-c", help="Collection to search.")]
QaOpt = Annotated[Path, typer.Option("--qa", help="Question set (JSONL, see eval/qa.py).")]
OutputOpt = Annotated[Path, typer.Option("--output", help="Folder for the reports.")]


def register(app: typer.Typer) -> None:
    app.add_typer(eval_app, name="eval")


def _prepare(collection: str, qa: Path) -> tuple[QuarrySettings, list[QaItem]]:
    settings = settings_or_exit(ingest={"collection": collection})
    try:
        return settings, load_qa(qa)
    except QaSetError as exc:
        raise fail(exc, 2) from None


def _write(output: Path, stem: str, data: object, text: str) -> None:
    output.mkdir(parents=True, exist_ok=True)
    (output / f"{stem}.json").write_text(json.dumps(data, indent=2, default=str))
    (output / f"{stem}.md").write_text(text)
    console.print(text, markup=False, highlight=False, soft_wrap=True)
    console.print(f"Reports: {output / (stem + '.json')}, {output / (stem + '.md')}")


def _gate(
    summary: Mapping[str, float | None], thresholds: Mapping[str, float | None], where: str
) -> int:
    missed = [
        f"{name} {summary[name]:.3f} < {floor}"
        for name, floor in thresholds.items()
        if floor is not None and (summary[name] or 0.0) < floor
    ]
    for line in missed:
        err_console.print(f"[red]Below the threshold ({where}): {line}[/red]")
    return 1 if missed else 0


@eval_app.command("retrieval")
def retrieval_command(
    collection: CollectionOpt = "quarry-docs",
    qa: QaOpt = SHIPPED_QA,
    k: Annotated[str, typer.Option(help="Passages retrieved, one value or several: 4,10.")] = "10",
    compare: Annotated[
        list[str] | None,
        typer.Option(
            help="A retrieval setting and the values to compare, e.g. hybrid_weight=0,0.5 or "
            "reranker=none,cross-encoder/ms-marco-MiniLM-L-6-v2. Repeat to cross several."
        ),
    ] = None,
    repeat: Annotated[int, typer.Option(min=1, help="Searches per question, for latency.")] = 1,
    output: OutputOpt = Path("reports"),
    min_hit_at_5: Annotated[float | None, typer.Option(help="Fail below this hit@5.")] = None,
    min_mrr: Annotated[float | None, typer.Option(help="Fail below this MRR@10.")] = None,
) -> None:
    """hit@k, MRR@10, nDCG@10, latency and the abstention sweep, configurations side by side."""
    from quarry.app.retrieval import EmptyCollectionError
    from quarry.eval.retrieval_eval import evaluate, markdown
    from quarry.ingest.collection import StoreError

    settings, items = _prepare(collection, qa)
    configs = _configs(settings, k, compare or [])
    components = Components(settings)
    results = []
    try:
        for name, options in configs:
            retriever = components.retriever(collection, options)
            with console.status(f"{name}: {len(items)} questions..."):
                results.append(evaluate(retriever, items, options.top_k, name, repeat))
    except (EmptyCollectionError, StoreError) as exc:
        raise fail(exc, 2) from None
    data = {
        r.name: {"summary": r.summary(), "questions": [asdict(q) for q in r.questions]}
        for r in results
    }
    _write(
        output, "eval-retrieval", data, markdown(results, f"Retrieval on {collection} ({qa.name})")
    )
    code = max(
        _gate(r.summary(), {"hit_at_5": min_hit_at_5, "mrr_at_10": min_mrr}, r.name)
        for r in results
    )
    raise typer.Exit(code)


def _configs(
    settings: QuarrySettings, k: str, compare: list[str]
) -> list[tuple[str, RetrievalSettings]]:
    """Every combination of the compared values (k included), validated like settings."""
    axes: list[tuple[str, list[str]]] = []
    for spec in compare:
        name, _, values = spec.partition("=")
        name = name.strip().removeprefix("retrieval.")
        if name not in RetrievalSettings.model_fields or not values.strip():
            fields = ", ".join(RetrievalSettings.model_fields)
            raise typer.BadParameter(
                f"{spec!r}: give SETTING=V1,V2 with a retrieval setting ({fields})",
                param_hint="--compare",
            )
        axes.append((name, [v.strip() for v in values.split(",")]))
    axes.append(("top_k", [v.strip() for v in k.split(",") if v.strip()]))
    configs: list[tuple[str, RetrievalSettings]] = []
    for combo in itertools.product(*(values for _, values in axes)):
        update = {
            name: None if value.lower() == "none" else value
            for (name, _), value in zip(axes, combo, strict=True)
        }
        try:
            options = RetrievalSettings.model_validate(
                {**settings.retrieval.model_dump(), **update}
            )
        except ValidationError as exc:
            problem = exc.errors()[0]
            raise typer.BadParameter(
                f"retrieval.{problem['loc'][0]}: {problem['msg']}",
                param_hint="--compare" if problem["loc"][0] != "top_k" else "--k",
            ) from None
        label = " ".join(
            f"{'k' if name == 'top_k' else name}={value}"
            for (name, _), value in zip(axes, combo, strict=True)
        )
        configs.append((label, options))
    if not configs:
        raise typer.BadParameter("give at least one k of 1 or more", param_hint="--k")
    return configs


@eval_app.command("answers")
def answers_command(
    collection: CollectionOpt = "quarry-docs",
    qa: QaOpt = SHIPPED_QA,
    output: OutputOpt = Path("reports"),
    judge: Annotated[bool, typer.Option(help="Also ask the served model to judge.")] = False,
    min_citation_precision: Annotated[float | None, typer.Option()] = None,
    min_fact_recall: Annotated[float | None, typer.Option()] = None,
    min_refusal_accuracy: Annotated[float | None, typer.Option()] = None,
) -> None:
    """Run the chat chain on each question: citations, facts, refusals, latency."""
    from quarry.app.retrieval import EmptyCollectionError
    from quarry.eval.answers_eval import evaluate, markdown

    settings, items = _prepare(collection, qa)
    try:
        chain = Components(settings).chain(collection)
    except (ConnectionError, EmptyCollectionError) as exc:
        raise fail(exc, 2) from None
    with console.status(f"Answering {len(items)} questions..."):
        report = evaluate(chain, items, with_judge=judge)
    data = {"summary": report.summary(), "questions": [asdict(r) for r in report.results]}
    _write(output, "eval-answers", data, markdown(report, f"Answers on {collection} ({qa.name})"))
    thresholds = {
        "citation_precision": min_citation_precision,
        "fact_recall": min_fact_recall,
        "refusal_accuracy": min_refusal_accuracy,
    }
    raise typer.Exit(_gate(report.summary(), thresholds, "answers"))


@eval_app.command("injection")
def injection_command(
    labelled: Annotated[
        Path | None,
        typer.Option(
            "--set",
            help="Labelled JSONL (default: the shipped eval/qa/injection.jsonl, which the "
            "offline screen learns from; eval/qa/injection-heldout-3.jsonl was written apart "
            "from it and never used to tune it).",
        ),
    ] = None,
    classifier_url: Annotated[
        str | None,
        typer.Option(
            help="vLLM server with an injection classifier (default: "
            "QUARRY_SCREENING_CLASSIFIER_URL): report it alone and combined with the offline "
            "screen."
        ),
    ] = None,
    classifier_model: Annotated[
        str | None, typer.Option(help="Its served model name (default: the first it lists).")
    ] = None,
    output: OutputOpt = Path("reports"),
    min_precision: Annotated[
        float | None,
        typer.Option(help="Fail below this precision (of the combination with a classifier)."),
    ] = None,
    min_recall: Annotated[
        float | None,
        typer.Option(help="Fail below this recall (of the combination with a classifier)."),
    ] = None,
) -> None:
    """Precision and recall of the prompt-injection screen on a labelled set."""
    from quarry.app.injection_classifier import ClassifierError, InjectionClassifier
    from quarry.eval.injection_eval import (
        SHIPPED_SET,
        compare,
        evaluate,
        gated,
        load_labelled,
        markdown,
    )

    path = labelled or SHIPPED_SET
    settings = settings_or_exit(
        screening={"classifier_url": classifier_url, "classifier_model": classifier_model}
    )
    try:
        rows = load_labelled(path)
    except (OSError, QaSetError) as exc:
        raise fail(exc, 2) from None
    classifier = InjectionClassifier.from_settings(settings.screening)
    if classifier is None:
        result = evaluate(rows)
    else:
        try:
            with console.status(f"Classifying {len(rows)} texts..."):
                result = compare(rows, classifier)
        except ClassifierError as exc:
            raise fail(exc, 2) from None
    _write(output, "eval-injection", result, markdown(result))
    name, summary = gated(result)
    thresholds = {"precision": min_precision, "recall": min_recall}
    raise typer.Exit(_gate(summary, thresholds, f"injection, {name}"))


@eval_app.command("tools")
def tools_command(
    tool_choice: Annotated[
        str, typer.Option(help="auto (the model decides; needs a tool-call parser) or required.")
    ] = "auto",
    strict: Annotated[
        bool, typer.Option(help="Ask vLLM to hold arguments to the schema, as the chat does.")
    ] = True,
    output: OutputOpt = Path("reports"),
    min_valid: Annotated[
        float | None, typer.Option(help="Fail below this valid-call rate.")
    ] = None,
) -> None:
    """How often the served model produces a valid tool call (parse failures included)."""
    from openai import BadRequestError, OpenAI

    from quarry.app.llm import discover_model
    from quarry.eval.tools_eval import (
        SHIPPED_TOOLS_SET,
        as_dicts,
        evaluate,
        load_items,
        markdown,
        summary,
    )

    settings = settings_or_exit()
    try:
        model = discover_model(settings)
    except ConnectionError as exc:
        raise fail(exc, 2) from None
    client = OpenAI(
        base_url=f"{settings.server.base_url}/v1", api_key=settings.server.api_key or "unused"
    )
    try:
        results = evaluate(client, model, load_items(SHIPPED_TOOLS_SET), tool_choice, strict=strict)
    except BadRequestError as exc:
        err_console.print(
            f"[red]The server refused tool calls ({exc.message}). vLLM needs a tool-call "
            "parser for any tool_choice: start it with QUARRY_SERVER_ENABLE_AUTO_TOOL_CHOICE=true "
            "and QUARRY_SERVER_TOOL_CALL_PARSER (hermes for the cpu profile's model).[/red]"
        )
        raise typer.Exit(2) from None
    data = {
        "model": model,
        "tool_choice": tool_choice,
        "strict": strict,
        "summary": summary(results),
        "questions": as_dicts(results),
    }
    stem = f"eval-tools-{tool_choice}{'-strict' if strict else ''}"
    _write(output, stem, data, markdown(results, model, tool_choice, strict))
    raise typer.Exit(_gate(summary(results), {"valid": min_valid}, "tools"))


def _gap_gate(gap: float | None, max_gap: float | None, k: int) -> int:
    if max_gap is None or gap is None or round(gap, 9) <= max_gap:
        return 0
    err_console.print(
        f"[red]Above the threshold (followups): standalone hit@{k} minus followup hit@{k} "
        f"is {gap:.3f} > {max_gap}[/red]"
    )
    return 1


@eval_app.command("followups")
def followups_command(
    collection: CollectionOpt = "quarry-docs",
    qa: Annotated[
        Path,
        typer.Option(
            "--qa",
            help="Multi-turn set (JSONL, one conversation a line, see eval/qa.py); "
            "eval/qa/followups-peps.jsonl goes with a collection of the PEPs subset.",
        ),
    ] = SHIPPED_FOLLOWUPS,
    k: Annotated[int, typer.Option(min=1, max=50, help="Passages retrieved per search.")] = 5,
    output: OutputOpt = Path("reports"),
    max_gap: Annotated[
        float | None,
        typer.Option(help="Fail when standalone hit@k minus followup hit@k is more than this."),
    ] = None,
) -> None:
    """Follow-ups searched as the chat does, alone, and as hand-written standalone questions.

    Reports hit@1, hit@k and MRR@k of the three side by side for the turns after the first,
    and the first turns apart.
    """
    from quarry.app.retrieval import EmptyCollectionError
    from quarry.eval.followups_eval import evaluate, markdown
    from quarry.ingest.collection import StoreError

    settings = settings_or_exit(ingest={"collection": collection})
    try:
        conversations = load_conversations(qa)
    except QaSetError as exc:
        raise fail(exc, 2) from None
    try:
        retriever = Components(settings).retriever(collection)
        turns = sum(len(c.turns) for c in conversations)
        with console.status(f"{len(conversations)} conversations, {turns} turns..."):
            report = evaluate(retriever, conversations, k)
    except (EmptyCollectionError, StoreError) as exc:
        raise fail(exc, 2) from None
    data = {"summary": report.summary(), "turns": [asdict(t) for t in report.turns]}
    title = f"Follow-up retrieval on {collection} ({qa.name})"
    _write(output, "eval-followups", data, markdown(report, title))
    raise typer.Exit(_gap_gate(report.gap(), max_gap, k))
