"""What a run did: the batch job's RunSummary and the streaming job's StreamSummary."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class RunSummary:
    """`audit_heads`: the heads of the run's audit chains (store.audit_chain.AuditHead as
    dicts) at its end, to be kept outside the database: `docstream audit verify --head`
    checks the chains against them (a tail cut off, with its head reset, shows)."""

    run_id: str
    inputs: int
    classified: int
    dead_letters: int
    labels: dict[str, int]
    dead_by_reason: dict[str, int]
    needs_review: int
    seconds: float
    startup_seconds: float = 0.0
    audit_heads: list[dict[str, Any]] = field(default_factory=list)
    #: the explanation branch: submitted, explained, skipped (backlog full or left at the
    #: end), failed, seconds of work, per_s (pipelines.explain_branch.ExplainStats)
    explanations: dict[str, float] = field(default_factory=dict)

    @property
    def docs_per_s(self) -> float:
        """Throughput once the pipeline and model are up (start-up is reported apart)."""
        busy = self.seconds - self.startup_seconds
        return self.inputs / busy if busy > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "inputs": self.inputs, "classified": self.classified,
            "dead_letters": self.dead_letters, "labels": self.labels,
            "dead_by_reason": self.dead_by_reason, "needs_review": self.needs_review,
            "needs_review_share": self.needs_review / self.classified if self.classified else 0.0,
            "seconds": round(self.seconds, 3), "startup_seconds": round(self.startup_seconds, 3),
            "docs_per_s": round(self.docs_per_s, 1), "audit_heads": self.audit_heads,
            "explanations": self.explanations,
        }


@dataclass(frozen=True)
class StreamSummary(RunSummary):
    """What one session of a stream did (counts since it started): a RunSummary plus the
    stream's group, topics, final status, partition positions and lag, and where its time
    went, each measured on its own (None when not measured: nothing written, or an SDK
    environment outside the launching process):

    - `model_load_s`: loading the model (the handler's `load_model`), which ended
      `model_ready_s` after the job started (Prism and the workers start first);
    - `first_result_s`: from the job's start to its first committed result or dead letter
      (`startup_seconds` holds the same figure, as before);
    - `steady_docs_per_s`: inputs committed after that first write unit per second after it,
      up to the last write (idle time after the backlog is not counted), over `write_units`
      write transactions.
    """

    group: str = ""
    topics: list[str] = field(default_factory=list)
    #: this worker of the group, the partitions it owned at the end, and how many times it
    #: planned (started reading a new assignment)
    worker: str = ""
    owned: list[str] = field(default_factory=list)
    plans: int = 0
    status: str = "running"
    positions: dict[str, int] = field(default_factory=dict)
    lag: int | None = None
    model_load_s: float | None = None
    model_ready_s: float | None = None
    first_result_s: float | None = None
    steady_docs_per_s: float | None = None
    write_units: int = 0

    @property
    def docs_per_s(self) -> float:
        """The steady-state throughput when measured, else inputs over the whole session."""
        if self.steady_docs_per_s is not None:
            return self.steady_docs_per_s
        return self.inputs / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        def r(x: float | None, digits: int = 3) -> float | None:
            return None if x is None else round(x, digits)

        return {**super().as_dict(), "group": self.group, "topics": self.topics,
                "worker": self.worker, "owned": self.owned, "plans": self.plans,
                "status": self.status, "positions": self.positions, "lag": self.lag,
                "model_load_s": r(self.model_load_s), "model_ready_s": r(self.model_ready_s),
                "first_result_s": r(self.first_result_s),
                "steady_docs_per_s": r(self.steady_docs_per_s, 1),
                "write_units": self.write_units}
