"""Helpers shared by the benchmarks that start vLLM servers and read their `/metrics`."""

from __future__ import annotations

import re
import socket

import httpx


def free_port() -> int:
    """A port nothing listens on now, so a fresh server never collides with another run."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prefix_counters(base_url: str) -> tuple[float, float]:
    """vLLM's cumulative (queried, hit) prefix-cache token counters."""
    text = httpx.get(f"{base_url}/metrics", timeout=10).text

    def total(name: str) -> float:
        pattern = rf"^vllm:{name}(?:\{{[^}}]*\}})? ([0-9.e+]+)$"
        return sum(float(v) for v in re.findall(pattern, text, re.M))

    return total("prefix_cache_queries_total"), total("prefix_cache_hits_total")
