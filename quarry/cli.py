"""The `quarry` command line: thin wrappers that validate, call the library and report."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from quarry.console import console, err_console, fail, settings_or_exit
from quarry.eval.cli import register as register_eval
from quarry.eval.serving_cli import register as register_bench_serve
from quarry.ingest.cli import register as register_ingest
from quarry.settings import QuarrySettings, SettingsError

app = typer.Typer(
    help="Quarry: chat with your documents on your own hardware.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
model_app = typer.Typer(help="Manage the model Quarry serves.", no_args_is_help=True)
bench_app = typer.Typer(
    help="Benchmarks that print numbers beside a baseline.", no_args_is_help=True
)
app.add_typer(model_app, name="model")
app.add_typer(bench_app, name="bench")
register_ingest(app, bench_app)
register_eval(app)
register_bench_serve(bench_app)

ProfileOpt = Annotated[
    str | None, typer.Option("--profile", help="cpu or gpu (default: detected).")
]
ModelOpt = Annotated[str | None, typer.Option(help="Model hub id or local folder.")]
MaxLenOpt = Annotated[int | None, typer.Option(help="Maximum tokens per request.")]
KvOpt = Annotated[int | None, typer.Option(help="CPU profile: KV-cache size in GiB.")]
MemUtilOpt = Annotated[float | None, typer.Option(help="GPU profile: fraction of GPU memory.")]
TpOpt = Annotated[int | None, typer.Option(help="GPU profile: GPUs per model replica.")]


def _settings(profile: str | None, **server: Any) -> QuarrySettings:
    """Settings with CLI flags on top; a bad value exits 2 with the settings' own message."""
    return settings_or_exit(profile=profile, server=server)


@app.command()
def serve(
    profile: ProfileOpt = None,
    model: ModelOpt = None,
    served_model_name: Annotated[str | None, typer.Option(help="Name clients use.")] = None,
    host: Annotated[str | None, typer.Option(help="Address to bind.")] = None,
    port: Annotated[int | None, typer.Option(help="Port of the OpenAI API.")] = None,
    max_model_len: MaxLenOpt = None,
    gpu_memory_utilization: MemUtilOpt = None,
    tensor_parallel_size: TpOpt = None,
    pipeline_parallel_size: Annotated[int | None, typer.Option(help="Pipeline stages.")] = None,
    dtype: Annotated[str | None, typer.Option(help="auto, bfloat16, float16, float32.")] = None,
    quantization: Annotated[str | None, typer.Option(help="e.g. awq, gptq, fp8.")] = None,
    api_key: Annotated[
        str | None, typer.Option(help="Require this key from clients.", envvar=None)
    ] = None,
    tool_call_parser: Annotated[str | None, typer.Option(help="e.g. llama3_json.")] = None,
    chat_template: Annotated[str | None, typer.Option(help="Jinja chat template file.")] = None,
    kv_cache_space_gib: KvOpt = None,
    enforce_eager: Annotated[
        bool | None, typer.Option("--enforce-eager/--compile", help="Skip torch.compile.")
    ] = None,
    print_command: Annotated[
        bool, typer.Option("--print-command", help="Print the vLLM command and exit.")
    ] = False,
) -> None:
    """Start the vLLM OpenAI-compatible server and wait until it is healthy."""
    from quarry.serve.command import build_command

    settings = _settings(
        profile,
        model=model,
        served_model_name=served_model_name,
        host=host,
        port=port,
        max_model_len=max_model_len,
        gpu_memory_utilization=gpu_memory_utilization,
        tensor_parallel_size=tensor_parallel_size,
        pipeline_parallel_size=pipeline_parallel_size,
        dtype=dtype,
        quantization=quantization,
        api_key=api_key,
        tool_call_parser=tool_call_parser,
        chat_template=chat_template,
        kv_cache_space_gib=kv_cache_space_gib,
        enforce_eager=enforce_eager,
    )
    if print_command:
        typer.echo(build_command(settings).shell())
        return

    server = _start_server(settings)
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops vLLM as cleanly as Ctrl-C
    try:
        code = server.process.wait() if server.process else 0
        err_console.print(f"[red]vLLM exited with code {code}.[/red]\n{server.log_tail()}")
        raise typer.Exit(1)
    except KeyboardInterrupt:
        console.print("Stopping vLLM...")
        server.stop()
        console.print("Stopped.")


def _start_server(settings: QuarrySettings) -> Any:
    """Start vLLM with a live status line; exit with a clear message when it cannot start."""
    from quarry.serve.command import build_command
    from quarry.serve.launch import log_path_for, start_server
    from quarry.serve.model_prep import ModelPreparationError
    from quarry.serve.process import ServerStartError

    log_path = log_path_for(settings)
    console.print(
        f"[bold]Profile[/bold] {settings.profile}  [bold]model[/bold] {settings.server.model}\n"
        f"[dim]{build_command(settings).shell()}[/dim]"
    )
    started = time.monotonic()
    try:
        with console.status(f"Starting vLLM (log: {log_path})...") as status:

            def tick() -> None:
                status.update(
                    f"Starting vLLM ({time.monotonic() - started:.0f} s, log: {log_path})"
                )

            server = start_server(settings, log_path, on_tick=tick)
    except (SettingsError, ModelPreparationError) as exc:
        raise fail(exc, 2) from None
    except ServerStartError as exc:
        raise fail(exc, 1) from None
    except KeyboardInterrupt:
        err_console.print("Interrupted; vLLM stopped.")
        raise typer.Exit(130) from None
    _print_ready(settings, server, time.monotonic() - started)
    return server


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def _print_ready(settings: QuarrySettings, server: Any, seconds: float) -> None:
    table = Table(show_header=False, box=None)
    table.add_row("Endpoint", f"{settings.server.base_url}/v1")
    table.add_row("Model", settings.server.served_model_name or settings.server.model)
    capacity = server.capacity()
    if capacity:
        table.add_row("KV cache", f"{capacity.kv_cache_tokens:,} tokens")
        table.add_row(
            "Max concurrency",
            f"{capacity.max_concurrency:.2f}x at {capacity.model_len:,} tokens per request",
        )
    table.add_row("Started in", f"{seconds:.1f} s")
    table.add_row("Log", str(server.log_path))
    console.print("[green bold]vLLM is ready.[/green bold]")
    console.print(table)


@app.command()
def doctor(
    profile: ProfileOpt = None,
    model: ModelOpt = None,
    max_model_len: MaxLenOpt = None,
    kv_cache_space_gib: KvOpt = None,
    gpu_memory_utilization: MemUtilOpt = None,
    tensor_parallel_size: TpOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    bench: Annotated[
        bool, typer.Option("--bench", help="Also measure matmul, bandwidth and all-reduce.")
    ] = False,
) -> None:
    """Check the machine, the software stack and the model before serving."""
    from quarry.serve.doctor import run_bench_section, run_doctor

    settings = _settings(
        profile,
        model=model,
        max_model_len=max_model_len,
        kv_cache_space_gib=kv_cache_space_gib,
        gpu_memory_utilization=gpu_memory_utilization,
        tensor_parallel_size=tensor_parallel_size,
    )
    if as_json:
        report = run_doctor(settings)
        if bench:
            run_bench_section(report, settings)
        typer.echo(report.to_json())
    else:
        with console.status("Checking the machine and the model..."):
            report = run_doctor(settings)
        if bench:
            with console.status("Measuring the hardware..."):
                run_bench_section(report, settings)
        _print_report(report)
    raise typer.Exit(0 if report.ok else 1)


def _print_report(report: Any) -> None:
    colours = {"ok": "green", "warn": "yellow", "fail": "red", "info": "blue"}
    table = Table(title=f"Quarry doctor: profile {report.profile}, model {report.model}")
    table.add_column("Check")
    table.add_column("Status")
    table.add_column("Detail")
    for check in report.checks:
        detail = check.detail
        if check.hint and check.status in ("warn", "fail"):
            detail += f"\n[italic]{check.hint}[/italic]"
        table.add_row(check.name, f"[{colours[check.status]}]{check.status}[/]", detail)
    console.print(table)
    if bench := report.facts.get("bench"):
        _print_bench(bench)
    if topology := report.facts.get("nvidia_topology"):
        console.print("[bold]GPU topology (nvidia-smi topo -m)[/bold]")
        console.print(topology, markup=False, highlight=False)
    verdict = "[green]Ready to serve.[/green]" if report.ok else "[red]Fix the failed checks.[/red]"
    console.print(verdict)


@app.command()
def chat(
    ui_port: Annotated[int | None, typer.Option(help="Port of the chat page.")] = None,
    collection: Annotated[str | None, typer.Option(help="Collection to search first.")] = None,
) -> None:
    """Open the chat page (the model server must be running: `quarry serve`)."""
    from quarry.app.launch import child_env, start_ui, ui_url

    settings = settings_or_exit(chat={"ui_port": ui_port}, ingest={"collection": collection})
    env = child_env(settings, settings.ingest.collection)
    console.print(f"Chat page: [bold]{ui_url(settings)}[/bold]  (Ctrl-C to stop)")
    _wait_for(start_ui(settings, env))


@app.command()
def api(
    profile: ProfileOpt = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on (127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (8600).")] = None,
) -> None:
    """Serve the collections as an OpenAI-compatible API: one model per collection."""
    from quarry.app.api import serve
    from quarry.app.launch import api_url

    settings = settings_or_exit(profile=profile, api={"host": host, "port": port})
    key = "with an API key" if settings.api.api_key else "no API key (QUARRY_API_API_KEY sets one)"
    console.print(f"Quarry API: [bold]{api_url(settings)}[/bold], {key}  (Ctrl-C to stop)")
    serve(settings)


@app.command()
def up(
    profile: ProfileOpt = None,
    port: Annotated[int | None, typer.Option(help="Port of the model server.")] = None,
    ui_port: Annotated[int | None, typer.Option(help="Port of the chat page.")] = None,
    api: Annotated[
        bool | None, typer.Option("--api/--no-api", help="Start `quarry api` beside the page.")
    ] = None,
) -> None:
    """Start everything: the model server, the sample collection and the chat page."""
    from quarry.app.launch import (
        SAMPLE_COLLECTION,
        api_url,
        child_env,
        refresh_sample_collection,
        start_api,
        start_ui,
        ui_url,
    )
    from quarry.app.llm import server_status
    from quarry.components import Components
    from quarry.package_data import MAINTAINER_DOCS, SAMPLE_DOCS

    settings = settings_or_exit(
        profile=profile,
        server={"port": port},
        chat={"ui_port": ui_port},
        api={"start_with_up": api},
    )
    server = api_process = None
    if server_status(settings).healthy:
        console.print(f"Using the model server already running at {settings.server.base_url}.")
    else:
        server = _start_server(settings)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        only_user_docs = {
            "collection": SAMPLE_COLLECTION,
            "exclude": [*settings.ingest.exclude, *MAINTAINER_DOCS],
        }
        sample = settings.model_copy(
            update={"ingest": settings.ingest.model_copy(update=only_user_docs)}
        )
        with console.status(f"Adding the sample collection {SAMPLE_COLLECTION!r} ({SAMPLE_DOCS})"):
            report, stale = refresh_sample_collection(Components(sample), SAMPLE_DOCS)
        if stale:
            console.print(f"Sample collection: removed {stale} document(s) of another copy.")
        console.print(f"Sample collection: {report.summary()}")
        env = child_env(settings, SAMPLE_COLLECTION)  # the sidebar switches collections
        if settings.api.start_with_up:
            api_process = start_api(settings, env)
            console.print(f"OpenAI-compatible API: [bold]{api_url(settings)}[/bold]")
        console.print(
            f"[green bold]Quarry is ready:[/green bold] open [bold]{ui_url(settings)}[/bold] "
            "(Ctrl-C stops everything)"
        )
        _wait_for(start_ui(settings, env))
    finally:
        if api_process is not None:
            api_process.terminate()
            api_process.wait(timeout=30)
        if server is not None:
            console.print("Stopping vLLM...")
            server.stop()


def _wait_for(process: Any) -> None:
    try:
        code = process.wait()
    except KeyboardInterrupt:
        process.terminate()
        process.wait(timeout=30)
        console.print("Chat page stopped.")
        return
    if code:
        raise typer.Exit(code)


@bench_app.command("prefix-cache")
def bench_prefix_cache(
    profile: ProfileOpt = None,
    output: Annotated[Path, typer.Option(help="Folder for the JSON and Markdown reports.")] = Path(
        "reports"
    ),
    max_tokens: Annotated[int, typer.Option(help="Tokens generated per turn.")] = 48,
) -> None:
    """Prefix-cache hit rate and time to first token over a scripted 8-turn chat, for three
    request layouts, each on a freshly started server."""
    from quarry.eval.prefix_cache import markdown_report, run_benchmark, write_reports

    settings = settings_or_exit(profile=profile)
    results = run_benchmark(settings, max_tokens=max_tokens, progress=console.print)
    console.print(markdown_report(results), markup=False, highlight=False, soft_wrap=True)
    json_path, md_path = write_reports(results, output)
    console.print(f"Reports: {json_path}, {md_path}")


@bench_app.command("chat")
def bench_chat(
    collection: Annotated[
        str, typer.Option("--collection", "-c", help="Collection to search.")
    ] = "quarry-docs",
    question: Annotated[
        list[str] | None,
        typer.Option(
            "--question", "-q", help="A turn of the conversation; repeat it to replace the script."
        ),
    ] = None,
    output: Annotated[Path, typer.Option(help="Folder for the JSON and Markdown reports.")] = Path(
        "reports"
    ),
    warmup: Annotated[
        bool,
        typer.Option(
            help="First send one throwaway request straight to the server (not through Quarry)."
        ),
    ] = True,
    max_ratio_first: Annotated[
        float | None, typer.Option(help="Fail when turn 1's Quarry/server TTFT is above this.")
    ] = None,
    max_ratio_followup: Annotated[
        float | None, typer.Option(help="Fail when a follow-up's Quarry/server TTFT is above this.")
    ] = None,
) -> None:
    """Quarry's time to first token beside the server's own, turn by turn, over a scripted
    conversation through the real chat chain (the model server must be running)."""
    from quarry.app.retrieval import EmptyCollectionError
    from quarry.components import Components
    from quarry.eval.chat_bench import (
        CONVERSATION,
        SHARED_WARNING,
        MetricsUnavailableError,
        exceeded,
        markdown_report,
        run_chat_bench,
        summarize,
        write_reports,
    )

    settings = settings_or_exit(ingest={"collection": collection})
    questions = question or CONVERSATION
    base_url = settings.server.base_url
    try:
        with console.status("Building the chat chain..."):
            chain = Components(settings).chain(collection)
        with console.status("Asking...") as status:

            def progress(turn: int, text: str) -> None:
                status.update(f"Turn {turn}/{len(questions)}: {text}")

            results = run_chat_bench(
                chain,
                base_url,
                questions,
                warmup,
                api_key=settings.server.api_key,
                progress=progress,
            )
    except (ConnectionError, EmptyCollectionError, MetricsUnavailableError) as exc:
        raise fail(exc, 2) from None

    table = Table(title=f"Chat bench: {collection} on {base_url} ({chain.llm.model_name})")
    table.add_column("Turn", justify="right")
    table.add_column("Question")
    table.add_column("Quarry TTFT s", justify="right")
    table.add_column("Server TTFT s", justify="right")
    table.add_column("Ratio", justify="right")
    table.add_column("Server reqs", justify="right")
    table.add_column("Cache hit", justify="right")
    for r in results:
        text = r.question if len(r.question) <= 40 else r.question[:39] + "…"
        reqs = str(r.server_requests)
        if r.answer_requests != 1:
            reqs += f" [yellow]({r.answer_requests} in answer)[/yellow]"
        table.add_row(
            str(r.turn),
            text,
            "-" if r.quarry_ttft_s is None else f"{r.quarry_ttft_s:.3f}",
            "-" if r.server_ttft_s is None else f"{r.server_ttft_s:.3f}",
            "-" if r.ratio is None else f"{r.ratio:.2f}",
            reqs,
            "-" if r.cache_hit_rate is None else f"{r.cache_hit_rate:.0%}",
        )
    console.print(table)
    summary = summarize(results)
    report = markdown_report(results, f"Chat bench: {collection} ({chain.llm.model_name})")
    for line in report.splitlines():
        if line.startswith("- "):
            warn = "not isolated" in line or line == f"- {SHARED_WARNING}"
            console.print(line, markup=False, highlight=False, style="yellow" if warn else None)
    meta = {
        "collection": collection,
        "model": chain.llm.model_name,
        "base_url": base_url,
        "warmup": warmup,
        "questions": list(questions),
    }
    json_path, md_path = write_reports(results, output, meta, report)
    console.print(f"Reports: {json_path}, {md_path}")
    missed = exceeded(summary, max_ratio_first, max_ratio_followup)
    for line in missed:
        err_console.print(f"[red]Above the limit: {line}[/red]")
    raise typer.Exit(1 if missed else 0)


def _print_bench(bench: dict[str, Any]) -> None:
    table = Table(title=f"Hardware benchmark: {bench['device']}")
    table.add_column("Measurement")
    table.add_column("Result", justify="right")
    table.add_column("Of rated", justify="right")
    table.add_column("Detail")
    for part in ("matmul", "bandwidth", "peer_to_peer", "all_reduce"):
        for m in bench[part]:
            fraction = f"{m['fraction_of_rated']:.0%}" if m["fraction_of_rated"] else ""
            table.add_row(m["name"], f"{m['value']:,} {m['unit']}", fraction, m["detail"])
    console.print(table)
    for key, value in bench["implications"].items():
        console.print(f"  {key.replace('_', ' ')}: {value}")
    for line in bench["skipped"]:
        console.print(f"  [dim]skipped: {line}[/dim]")


@model_app.command("prepare")
def model_prepare(
    cache_dir: Annotated[Path | None, typer.Option(help="Where prepared models live.")] = None,
) -> None:
    """Build the offline CPU model's servable checkpoint (once; later runs reuse it)."""
    from quarry.serve.launch import default_model_dir
    from quarry.serve.model_prep import ModelPreparationError, is_prepared, prepare_cpu_model

    settings = settings_or_exit(profile="cpu", cache_dir=cache_dir)
    target = default_model_dir(settings)
    if is_prepared(target):
        console.print(f"Already prepared: {target}")
        return
    try:
        with console.status(f"Converting the shipped GGUF into {target}..."):
            prepare_cpu_model(target)
    except ModelPreparationError as exc:
        raise fail(exc, 1) from None
    console.print(f"Prepared: {target}")


if __name__ == "__main__":
    app()
