"""Helpers shared by the benchmarks that start vLLM servers and read their `/metrics`."""

from __future__ import annotations

import math
import re
import socket
from collections.abc import Iterable

import httpx

# One sample line of the Prometheus text format: a name, optional labels (quoted values may
# hold `}` or `,`), a value, an optional timestamp. Comment lines (`# HELP`, `# TYPE`) never
# match, since a name cannot start with `#`.
_SAMPLE = re.compile(
    r'^(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)(?:\{(?:[^"}]|"(?:[^"\\]|\\.)*")*\})?'
    r"[ \t]+(?P<value>\S+)(?:[ \t]+-?\d+)?[ \t]*$",
    re.M,
)


def free_port() -> int:
    """A port nothing listens on now, so a fresh server never collides with another run."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def metrics_text(base_url: str, timeout_s: float = 10) -> str:
    """The server's `/metrics` page; raises httpx.HTTPError when it does not answer 200."""
    response = httpx.get(f"{base_url}/metrics", timeout=timeout_s)
    response.raise_for_status()
    return response.text


def parse_samples(text: str, names: Iterable[str] | None = None) -> dict[str, float]:
    """Each sample name's value summed over its label sets (engines, models, reasons).

    Names are exact: `vllm:time_to_first_token_seconds_sum` is not confused with its
    `_bucket` or `_count` lines, nor `..._total` with `..._created`. With `names`, only those,
    each present in the result (0.0 when the page lacks it); NaN samples are skipped."""
    wanted = set(names) if names is not None else None
    totals: dict[str, float] = dict.fromkeys(wanted, 0.0) if wanted is not None else {}
    for match in _SAMPLE.finditer(text):
        name = match["name"]
        if wanted is not None and name not in wanted:
            continue
        try:
            value = float(match["value"])
        except ValueError:
            continue
        if math.isnan(value):
            continue
        totals[name] = totals.get(name, 0.0) + value
    return totals


def read_counters(base_url: str, names: Iterable[str]) -> dict[str, float]:
    """The current value of each named sample (counters, histogram `_sum`/`_count`)."""
    names = list(names)
    return parse_samples(metrics_text(base_url), names)


def prefix_counters(base_url: str) -> tuple[float, float]:
    """vLLM's cumulative (queried, hit) prefix-cache token counters."""
    queried, hits = "vllm:prefix_cache_queries_total", "vllm:prefix_cache_hits_total"
    totals = read_counters(base_url, [queried, hits])
    return totals[queried], totals[hits]
