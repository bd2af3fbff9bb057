"""Options of the streaming job: its knobs (StreamOptions) and the Beam pipeline options."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from apache_beam.options.pipeline_options import PipelineOptions

from docstream.errors import ConfigError

from .batch import beam_options
from .options import RunSettings
from .prism import find_prism


@dataclass(frozen=True)
class StreamOptions:
    """Knobs of the streaming job (the CLI's --flush-secs and friends).

    flush_secs bounds how long a result waits at low traffic. A quiet partition is polled
    again every flush_secs / 4, and RunInference's batches are cut at the end of each source
    bundle (one poll round), so no result waits for a timer. `inference_timer` instead gives
    flush_secs to RunInference as max_batch_duration_secs (Beam's stateful BatchElements
    with a processing-time timer): on Prism 2.77 that timer sometimes never fires, and the
    last partial batch then waits for the next post (seen here: 3 posts held for minutes),
    so it is off by default.

    poll_tokens bounds the work of one poll (one write unit): its records' estimated model
    tokens (streaming.records.estimated_tokens). None: `default_poll_tokens` for the device;
    0: no bound but max_records (every poll up to max_records records, however long).
    """

    flush_secs: float = 1.0
    max_records: int = 500
    #: estimated model tokens per poll at most (None: default_poll_tokens; 0: no bound)
    poll_tokens: int | None = None
    max_in_flight: int = 5000
    report_every_s: float = 10.0
    drain_timeout_s: float = 60.0
    #: how long to wait out a store outage before the job fails; None: as long as it lasts
    store_wait_s: float | None = None
    prism_location: str | None = None
    dead_letter_topic: bool = True
    max_seconds: float | None = None
    inference_timer: bool = False
    #: NAME to follow in the registry (the job was started with NAME@production): a newly
    #: promoted version replaces the model without a restart. None: the model is fixed.
    watch_model: str | None = None
    watch_interval_s: float = 10.0
    #: serve Prometheus metrics on http://metrics_addr:metrics_port/metrics (0: any free
    #: port, logged); None: no metrics (pipelines.metrics)
    metrics_port: int | None = None
    metrics_addr: str = "0.0.0.0"
    #: this worker's name in its consumer group: its run id is stream-GROUP-WORKER (its
    #: `runs` row, audit chain and counts); None: HOST-PID
    worker: str | None = None
    #: the constant `worker` label of every metric; None: the worker's name
    metrics_worker: str | None = None

    def __post_init__(self) -> None:
        if not 0.05 <= self.flush_secs <= 60:
            raise ConfigError(f"--flush-secs must be within 0.05..60, got {self.flush_secs}")
        if not 1 <= self.max_records <= 100_000:
            raise ConfigError(f"--max-records must be within 1..100000, got {self.max_records}")
        if self.poll_tokens is not None and not 0 <= self.poll_tokens <= 100_000_000:
            raise ConfigError(f"--poll-tokens must be within 0..100000000, got "
                              f"{self.poll_tokens}")
        if self.max_in_flight < self.max_records:
            raise ConfigError(f"--max-in-flight ({self.max_in_flight}) must be at least "
                              f"--max-records ({self.max_records})")
        if self.report_every_s <= 0 or self.drain_timeout_s < 0 or (
                self.store_wait_s is not None and self.store_wait_s < 0):
            raise ConfigError("report, drain and retry times must be positive")
        if self.max_seconds is not None and self.max_seconds <= 0:
            raise ConfigError(f"--max-seconds must be > 0, got {self.max_seconds}")
        if not 0.5 <= self.watch_interval_s <= 3600:
            raise ConfigError(f"--watch-model-secs must be within 0.5..3600, got "
                              f"{self.watch_interval_s}")
        if self.metrics_port is not None and not 0 <= self.metrics_port <= 65535:
            raise ConfigError(f"--metrics-port must be within 0..65535, got {self.metrics_port}")
        if self.metrics_worker is not None and not 1 <= len(self.metrics_worker) <= 128:
            raise ConfigError("--metrics-worker must be 1..128 characters")

    @property
    def poll_timeout_ms(self) -> int:
        # Short on purpose: while a bundle of a stage without data outputs runs (this whole
        # fused pipeline), stock Prism 2.77 busy-waits on a closed channel in its progress loop
        # (scripts/build-prism patches that out), so a long blocking poll would cost a core
        # there; the resume delay paces the polls instead.
        return max(1, min(50, int(self.flush_secs * 1000 / 4)))

    @property
    def idle_delay_s(self) -> float:
        return self.flush_secs / 4


#: the model's token budget per forward batch (model.predictor.Predictor's default)
CPU_BATCH_TOKENS = 4096
CUDA_BATCH_TOKENS = 65536
#: a poll's default token budget, in model batches: 32,768 tokens on CPU, which is also the
#: handler's sort buffer (one RunInference batch). 500 short posts (~57 tokens each) still
#: fit one poll; about 70 articles of 400 words do, some 2 s of the bundled model on an idle
#: 2-core machine (~15,000 tokens/s; a busy one takes several times as long).
POLL_BATCHES = 8


def default_poll_tokens(device: str | None) -> int:
    """The default token budget of a poll on `device` (None: CUDA when present)."""
    if device is None:
        from docstream.model.predictor import pick_device

        kind = pick_device(None).type
    else:
        kind = device.split(":", 1)[0]
    return POLL_BATCHES * (CUDA_BATCH_TOKENS if kind == "cuda" else CPU_BATCH_TOKENS)


def poll_tokens_for(options: StreamOptions, device: str | None) -> int | None:
    """The source's token budget per poll: the option, its default, or None (0: no bound)."""
    if options.poll_tokens is None:
        return default_poll_tokens(device)
    return options.poll_tokens or None


def _has_arg(args: Sequence[str], name: str) -> bool:
    return any(a == name or a.startswith(name + "=") for a in args)


def stream_pipeline_options(settings: RunSettings, options: StreamOptions) -> PipelineOptions:
    """Beam options for the streaming job; on Prism, the binary found by `find_prism` unless
    the Beam arguments name one (`-- --prism_location=PATH`)."""
    extra: list[str] = []
    if settings.runner == "PrismRunner":
        if not _has_arg(settings.beam_args, "--prism_location"):
            extra.append(f"--prism_location={find_prism(options.prism_location)}")
        if not _has_arg(settings.beam_args, "--prism_log_level"):
            extra.append("--prism_log_level=warn")
    settings = settings.model_copy(update={"beam_args": [*settings.beam_args, *extra]})
    return beam_options(settings, streaming=True)
