"""`quarry doctor --bench`: how close the machine gets to its rated speed, and what that means.

Matrix multiply (TFLOP/s), memory bandwidth (device copies, host<->device, pinned and
pageable), GPU peer-to-peer copies, and all-reduce bus bandwidth. GPUs are timed with CUDA
events; the CPU with the wall clock. Parts that need a GPU (or several) are skipped with the
reason, so the report is complete on any machine.
"""

from __future__ import annotations

import os
import socket
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

GB = 1e9

# Rated dense peaks (TFLOP/s) and memory bandwidth (GB/s) of common serving GPUs.
RATED_TFLOPS = {
    "H100": {"bfloat16": 989.0, "float16": 989.0, "float32": 67.0},
    "H200": {"bfloat16": 989.0, "float16": 989.0, "float32": 67.0},
    "A100": {"bfloat16": 312.0, "float16": 312.0, "float32": 19.5},
}
RATED_BANDWIDTH_GBS = {"H100": 3350.0, "H200": 4800.0, "A100": 2039.0}


@dataclass
class Measurement:
    name: str
    value: float
    unit: str
    detail: str = ""
    fraction_of_rated: float | None = None


@dataclass
class BenchReport:
    device: str
    matmul: list[Measurement] = field(default_factory=list)
    bandwidth: list[Measurement] = field(default_factory=list)
    peer_to_peer: list[Measurement] = field(default_factory=list)
    all_reduce: list[Measurement] = field(default_factory=list)
    implications: dict[str, Any] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def matmul_tflops(m: int, n: int, k: int, seconds: float) -> float:
    """2*M*N*K floating-point operations (a multiply and an add per term) per second."""
    return 2 * m * n * k / seconds / 1e12


def bus_bandwidth(message_bytes: int, seconds: float, ranks: int) -> tuple[float, float]:
    """(algorithm, bus) bandwidth in GB/s for a ring all-reduce, as nccl-tests reports them."""
    algorithm = message_bytes / seconds / GB
    return algorithm, algorithm * 2 * (ranks - 1) / ranks


def decode_ceiling(bandwidth_gbs: float, weight_bytes: float) -> float:
    """Upper bound on one stream's tokens/s: every token reads all the weights once."""
    return bandwidth_gbs * GB / weight_bytes


def rated(table: dict[str, Any], device_name: str) -> Any:
    for key, value in table.items():
        if key in device_name:
            return value
    return None


Timer = Callable[[Callable[[], Any], int], float]


def _timer(torch: Any, device: str) -> Timer:
    """Median seconds per call of `fn` after a warm-up; CUDA events on GPUs."""

    def time_it(fn: Callable[[], Any], repeats: int) -> float:
        for _ in range(2):
            fn()
        samples = []
        for _ in range(repeats):
            if device == "cuda":
                start, end = (
                    torch.cuda.Event(enable_timing=True),
                    torch.cuda.Event(enable_timing=True),
                )
                start.record()
                fn()
                end.record()
                torch.cuda.synchronize()
                samples.append(start.elapsed_time(end) / 1000)
            else:
                began = time.perf_counter()
                fn()
                samples.append(time.perf_counter() - began)
        return statistics.median(samples)

    return time_it


def bench_matmul(torch: Any, device: str, sizes: list[int], report: BenchReport) -> None:
    time_it: Timer = _timer(torch, device)
    peaks = rated(RATED_TFLOPS, report.device) or {}
    dtypes = ["bfloat16", "float16", "float32"]
    if device == "cpu":  # PyTorch has no fast fp16 GEMM on x86 CPUs: minutes for nothing
        dtypes.remove("float16")
        report.skipped.append("float16 matmul: no fast kernel on the CPU")
    for dtype_name in dtypes:
        dtype = getattr(torch, dtype_name)
        for size in sizes:
            a = torch.randn(size, size, device=device, dtype=dtype)
            b = torch.randn(size, size, device=device, dtype=dtype)
            holder: list[Any] = []  # keep C alive so the product is really computed

            def multiply(a: Any = a, b: Any = b, holder: list[Any] = holder) -> None:
                holder[:] = [a @ b]

            seconds = time_it(multiply, 5)
            tflops = matmul_tflops(size, size, size, seconds)
            peak = peaks.get(dtype_name)
            report.matmul.append(
                Measurement(
                    f"matmul {dtype_name} {size}x{size}x{size}",
                    round(tflops, 3),
                    "TFLOP/s",
                    f"{seconds * 1000:.3f} ms",
                    round(tflops / peak, 3) if peak else None,
                )
            )


def bench_bandwidth(torch: Any, device: str, megabytes: int, report: BenchReport) -> None:
    time_it: Timer = _timer(torch, device)
    count = megabytes * 2**20 // 4
    source = torch.empty(count, dtype=torch.float32, device=device).fill_(1.0)
    target = torch.empty_like(source)
    nbytes = source.numel() * 4
    seconds = time_it(lambda: target.copy_(source), 10)
    copy_gbs = 2 * nbytes / seconds / GB  # every byte is read once and written once
    peak = rated(RATED_BANDWIDTH_GBS, report.device)
    where = "device-to-device" if device == "cuda" else "memory copy (CPU)"
    report.bandwidth.append(
        Measurement(
            f"{where}, {megabytes} MiB",
            round(copy_gbs, 1),
            "GB/s",
            "bytes read + written",
            round(copy_gbs / peak, 3) if peak else None,
        )
    )
    report.implications["memory_bandwidth_gbs"] = round(copy_gbs, 1)
    if device != "cuda":
        report.skipped.append("host<->device copies: no GPU")
        return
    for pinned in (True, False):
        host = torch.empty(count, dtype=torch.float32, pin_memory=pinned).fill_(1.0)
        kind = "pinned" if pinned else "pageable"
        h2d = time_it(partial(target.copy_, host, non_blocking=pinned), 10)
        d2h = time_it(partial(host.copy_, target, non_blocking=pinned), 10)
        for name, seconds in ((f"host-to-device ({kind})", h2d), (f"device-to-host ({kind})", d2h)):
            report.bandwidth.append(
                Measurement(f"{name}, {megabytes} MiB", round(nbytes / seconds / GB, 1), "GB/s")
            )


def bench_peer_to_peer(torch: Any, megabytes: int, report: BenchReport) -> None:
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count < 2:
        report.skipped.append(f"peer-to-peer copies: {count} GPU(s), needs 2 or more")
        return
    time_it: Timer = _timer(torch, "cuda")
    elements = megabytes * 2**20 // 4
    for src in range(count):
        for dst in range(count):
            if src == dst:
                continue
            direct = bool(torch.cuda.can_device_access_peer(src, dst))
            a = torch.ones(elements, device=f"cuda:{src}")
            b = torch.empty(elements, device=f"cuda:{dst}")
            if direct:
                seconds = time_it(partial(b.copy_, a), 10)
                path = "direct (peer access)"
            else:
                staging = torch.empty(elements, pin_memory=True)
                seconds = time_it(partial(_through, staging, a, b), 10)
                path = "through host memory"
            report.peer_to_peer.append(
                Measurement(
                    f"GPU {src} -> GPU {dst}", round(a.numel() * 4 / seconds / GB, 1), "GB/s", path
                )
            )


def _all_reduce_worker(
    rank: int, world: int, port: int, sizes: list[int], backend: str, results: Any
) -> None:
    import torch
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group(backend, rank=rank, world_size=world)
    device = f"cuda:{rank}" if backend == "nccl" else "cpu"
    if backend == "nccl":
        torch.cuda.set_device(rank)
    try:
        for size in sizes:
            tensor = torch.ones(size // 4, dtype=torch.float32, device=device)
            for _ in range(3):  # warm-up, also builds the communicator
                dist.all_reduce(tensor)
            repeats = 10
            dist.barrier()
            if backend == "nccl":
                torch.cuda.synchronize()
            began = time.perf_counter()
            for _ in range(repeats):
                dist.all_reduce(tensor)
            if backend == "nccl":
                torch.cuda.synchronize()
            dist.barrier()
            if rank == 0:
                results.append((size, (time.perf_counter() - began) / repeats))
    finally:
        dist.destroy_process_group()


def bench_all_reduce(torch: Any, sizes: list[int], report: BenchReport) -> None:
    import torch.multiprocessing as mp

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    backend, world = ("nccl", gpus) if gpus >= 2 else ("gloo", 2)
    if gpus == 1:
        report.skipped.append("NCCL all-reduce: one GPU; measured gloo on the CPU instead")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with mp.Manager() as manager:
        results = manager.list()
        mp.spawn(_all_reduce_worker, args=(world, port, sizes, backend, results), nprocs=world)
        measured = list(results)
    for size, seconds in measured:
        algorithm, bus = bus_bandwidth(size, seconds, world)
        report.all_reduce.append(
            Measurement(
                f"all_reduce sum, {size / 2**20:g} MiB, {world} ranks ({backend})",
                round(bus, 2),
                "GB/s bus",
                f"algorithm {algorithm:.2f} GB/s, {seconds * 1e6:.0f} us",
            )
        )


def run_bench(*, quick: bool = False) -> BenchReport:
    """Every part that this machine can run; `quick` shrinks the sizes (for tests)."""
    import torch

    gpu = torch.cuda.is_available()
    device = "cuda" if gpu else "cpu"
    name = torch.cuda.get_device_name(0) if gpu else "CPU"
    report = BenchReport(device=name)
    if gpu:
        sizes, megabytes = ([1024] if quick else [2048, 4096, 8192]), (64 if quick else 1024)
    else:
        sizes, megabytes = ([256] if quick else [512, 1024, 2048]), (16 if quick else 256)
        report.skipped.append("CUDA events: no GPU, timed with the wall clock")
    bench_matmul(torch, device, sizes, report)
    bench_bandwidth(torch, device, megabytes, report)
    bench_peer_to_peer(torch, megabytes, report)
    bench_all_reduce(torch, [2**20] if quick else [2**20, 16 * 2**20, 64 * 2**20], report)
    return report


def add_implications(
    report: BenchReport,
    weight_bytes: float,
    kv_cache: dict[str, Any] | None,
    tensor_parallel: int = 1,
) -> None:
    """Decode ceiling for one stream, and users at 4k and 8k context from the KV capacity."""
    bandwidth = report.implications.get("memory_bandwidth_gbs")
    if bandwidth:
        per_device = weight_bytes / max(tensor_parallel, 1)
        report.implications["decode_ceiling_tokens_per_s"] = round(
            decode_ceiling(bandwidth, per_device), 1
        )
        report.implications["weights_gb_per_device"] = round(per_device / GB, 2)
    if kv_cache:
        report.implications["concurrent_users_at_4k"] = kv_cache.get("users_at_4k")
        report.implications["concurrent_users_at_8k"] = kv_cache.get("users_at_8k")


def _through(staging: Any, source: Any, target: Any) -> Any:
    """Copy between GPUs without peer access: to pinned host memory, then on."""
    return target.copy_(staging.copy_(source))
