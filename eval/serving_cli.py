"""`quarry bench serve` and `quarry bench load`: the concurrency sweeps of `eval/serving.py`
(the model server) and `eval/load_bench.py` (Quarry's API) on the command line.

Exit codes: 0 on a finished run, 2 for usage errors (bad flags, a server that does not answer).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer

from quarry.console import console, fail, settings_or_exit
from quarry.settings import QuarrySettings, SettingsError

WORKLOADS = ("rag", "chat", "both")


def register(bench_app: typer.Typer) -> None:
    """Add `serve` and `load` to the `quarry bench` group."""
    bench_app.command("serve")(bench_serve)
    bench_app.command("load")(bench_load)


def bench_load(
    collection: Annotated[
        str, typer.Option("--collection", "-c", help="Collection to ask.")
    ] = "quarry-docs",
    levels: Annotated[
        str, typer.Option(help="Conversations at once, comma-separated.")
    ] = "1,4,16,32",
    turns: Annotated[int, typer.Option(min=1, max=8, help="Questions per conversation.")] = 2,
    rounds: Annotated[int, typer.Option(min=1, max=10, help="Times the whole sweep runs.")] = 2,
    max_tokens: Annotated[int, typer.Option(min=1, help="Tokens per answer.")] = 48,
    max_minutes: Annotated[float, typer.Option(help="Stop starting levels after this.")] = 30,
    page_sessions: Annotated[
        int, typer.Option(min=0, max=32, help="Browser sessions asking the page at once (0: none).")
    ] = 8,
    profile: Annotated[str | None, typer.Option(help="cpu or gpu (default: detected).")] = None,
    output: Annotated[Path, typer.Option(help="Folder for the JSON and Markdown reports.")] = Path(
        "reports"
    ),
) -> None:
    """Many conversations at once through `quarry api` (started here, on 127.0.0.1), beside
    the same questions straight to the model server: errors, TTFT and latency p50/p99, and
    each process's memory round after round; then browser sessions asking the chat page at
    once, every answer read to its end. The model server must be running."""
    from quarry.app.llm import discover_model
    from quarry.eval.load_bench import markdown_report, run_load, write_reports

    try:
        counts = sorted({int(n) for n in levels.split(",") if n.strip()})
    except ValueError:
        raise typer.BadParameter(
            f"{levels!r}: give counts like 1,4,16", param_hint="--levels"
        ) from None
    if not counts or counts[0] < 1 or counts[-1] > 64:
        raise typer.BadParameter("counts must be between 1 and 64", param_hint="--levels")
    settings = settings_or_exit(profile=profile)
    try:
        server_model = discover_model(settings)
    except ConnectionError as exc:
        raise fail(exc, 2) from None
    with console.status("Starting quarry api...") as status:
        report = run_load(
            settings,
            collection=collection,
            server_model=server_model,
            levels=counts,
            turns=turns,
            rounds=rounds,
            max_tokens=max_tokens,
            max_minutes=max_minutes,
            page_sessions=page_sessions,
            log_dir=output,
            progress=status.update,
        )
    console.print(markdown_report(report), markup=False, highlight=False, soft_wrap=True)
    json_path, md_path = write_reports(report, output)
    console.print(f"Reports: {json_path}, {md_path}")
    if report.errors:
        raise typer.Exit(1)


def settings_for(base_url: str | None, profile: str | None) -> QuarrySettings:
    """Settings whose server is `base_url` (an http://host:port, `/v1` allowed) when given."""
    server: dict[str, Any] = {}
    if base_url:
        parts = urlsplit(base_url)
        path_ok = parts.path.rstrip("/") in ("", "/v1")
        if parts.scheme != "http" or not parts.hostname or not path_ok:
            raise typer.BadParameter(
                f"{base_url!r}: give the server as http://HOST:PORT", param_hint="--base-url"
            )
        server = {"host": parts.hostname, "port": parts.port or 80}
    return settings_or_exit(profile=profile, server=server)


def bench_serve(
    base_url: Annotated[
        str | None,
        typer.Option(help="Server to benchmark (default: the configured one, e.g. :8000)."),
    ] = None,
    workload: Annotated[str, typer.Option(help="rag, chat or both.")] = "both",
    requests: Annotated[
        int, typer.Option(min=1, help="Requests per level (at least twice the concurrency).")
    ] = 16,
    max_concurrency: Annotated[
        int, typer.Option(min=1, help="Stop doubling the concurrency here.")
    ] = 64,
    output_tokens: Annotated[
        int | None,
        typer.Option(min=1, help="Tokens per answer (default: rag 64, chat 128)."),
    ] = None,
    compare_prefix_caching: Annotated[
        bool,
        typer.Option(
            "--compare-prefix-caching",
            help="Start two fresh servers, prefix caching on then off, and report the ratios.",
        ),
    ] = False,
    profile: Annotated[
        str | None, typer.Option(help="Profile of the servers --compare-prefix-caching starts.")
    ] = None,
    output: Annotated[Path, typer.Option(help="Folder for the JSON, Markdown and PNG.")] = Path(
        "reports"
    ),
) -> None:
    """Requests/s, output tokens/s, TTFT and ITL p50/p99 at 1, 2, 4, ... concurrent requests,
    until throughput stops rising: a RAG-shaped and a chat-shaped workload."""
    from quarry.app.llm import discover_model
    from quarry.eval import serving

    if workload not in WORKLOADS:
        raise typer.BadParameter(
            f"{workload!r}: choose one of {', '.join(WORKLOADS)}", param_hint="--workload"
        )
    if compare_prefix_caching and base_url:
        raise typer.BadParameter(
            "--compare-prefix-caching starts its own servers; leave out --base-url",
            param_hint="--base-url",
        )
    settings = settings_for(base_url, profile)
    chosen = serving.workloads(workload, output_tokens)
    if compare_prefix_caching:
        from quarry.serve.model_prep import ModelPreparationError
        from quarry.serve.process import ServerStartError

        try:
            results = serving.compare_prefix_caching(
                settings, chosen, requests, max_concurrency, progress=console.print
            )
        except (SettingsError, ModelPreparationError, ServerStartError, ConnectionError) as exc:
            raise fail(exc, 1) from None
        meta = _meta("fresh servers", settings.server.served_model_name, requests)
        text = serving.comparison_markdown(results, meta)
        paths = serving.write_comparison(results, meta, output)
    else:
        try:
            model = discover_model(settings)
        except ConnectionError as exc:
            raise fail(exc, 2) from None
        target = serving.Target(settings.server.base_url, model, settings.server.api_key)
        sweeps = []
        for w in chosen:
            try:
                sweeps.append(
                    serving.run_sweep(target, w, requests, max_concurrency, progress=console.print)
                )
            except ConnectionError as exc:
                raise fail(exc, 2) from None
        meta = _meta(settings.server.base_url, model, requests)
        text = serving.markdown(sweeps, meta)
        paths = serving.write_reports(sweeps, meta, output)
    console.print(text, markup=False, highlight=False, soft_wrap=True)
    console.print("Reports: " + ", ".join(str(p) for p in paths))


def _meta(base_url: str, model: str | None, requests: int) -> dict[str, Any]:
    from quarry.eval.serving import MIN_GAIN

    return {
        "base_url": base_url,
        "model": model,
        "requests_per_level": requests,
        "min_gain": MIN_GAIN,
    }
