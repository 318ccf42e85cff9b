"""What a run did, per file and in total; the CLI prints it, tests assert on it."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from quarry.ingest.records import Outcome

ORDER = ("added", "updated", "moved", "unchanged", "pruned", "missing", "skipped", "failed")


@dataclass
class IngestReport:
    collection: str
    outcomes: list[Outcome] = field(default_factory=list)
    chunks_written: int = 0
    chunks_embedded: int = 0
    seconds: float = 0.0
    recovered: list[tuple[str, str]] = field(default_factory=list)
    interrupted: bool = False
    dry_run: bool = False
    keyword_chunks: int | None = None  # chunks in the rebuilt keyword index (None: not rebuilt)
    keyword_seconds: float = 0.0
    warnings_logged: int = 0  # library warnings (pypdf's, ...) sent to `log_path`, not the screen
    log_path: str = ""

    def add(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)

    def counts(self) -> dict[str, int]:
        counter: Counter[str] = Counter(o.status for o in self.outcomes)
        return {status: counter.get(status, 0) for status in ORDER}

    @property
    def failed(self) -> bool:
        return any(o.status == "failed" for o in self.outcomes)

    @property
    def chunks_per_second(self) -> float:
        return self.chunks_written / self.seconds if self.seconds > 0 else 0.0

    def problems(self) -> list[Outcome]:
        """The lines a person must read: everything not simply stored or unchanged."""
        quiet = {"added", "updated", "unchanged"}
        return [o for o in self.outcomes if o.status not in quiet or o.reason]

    def summary(self) -> str:
        counts = self.counts()
        parts = [f"{counts[s]} {s}" for s in ORDER if counts[s] or s in ("added", "unchanged")]
        verb = "would be" if self.dry_run else "written"
        tail = (
            ""
            if self.dry_run
            else f"; {self.chunks_written} chunks {verb} in {self.seconds:.1f} s "
            f"({self.chunks_per_second:.1f} chunks/s)"
        )
        if self.keyword_chunks is not None:
            tail += (
                f"; keyword index rebuilt ({self.keyword_chunks} chunks, "
                f"{self.keyword_seconds:.1f} s)"
            )
        if self.warnings_logged:
            tail += f"; {self.warnings_logged} warning(s) logged to {self.log_path}"
        return f"{self.collection}: " + ", ".join(parts) + tail
