"""Progress display for training: a rich bar with loss and metric, or nothing."""

from __future__ import annotations

import sys
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class TrainProgress:
    """A live bar on a terminal (stderr); plain lines from `note` either way.

    Example:
        >>> with TrainProgress(total=10, enabled=False) as bar:  # doctest: +SKIP
        ...     bar.advance(loss=0.5)
    """

    def __init__(self, total: int, enabled: bool = True, metric_name: str = "macro_f1") -> None:
        self.console = Console(stderr=True, soft_wrap=True)
        self.enabled = enabled and sys.stderr.isatty()
        self.metric_name = metric_name
        self.loss: float | None = None
        self.metric: float | None = None
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._total = total

    def __enter__(self) -> TrainProgress:
        if self.enabled:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[stats]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=self.console,
            )
            self._progress.start()
            self._task = self._progress.add_task("train", total=self._total, stats="")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    @property
    def live(self) -> bool:
        """Whether a live bar is shown."""
        return self._progress is not None

    def _stats(self) -> str:
        parts = []
        if self.loss is not None:
            parts.append(f"loss {self.loss:.4f}")
        if self.metric is not None:
            parts.append(f"val {self.metric_name} {self.metric:.4f}")
        return "  ".join(parts)

    def set_description(self, text: str) -> None:
        """Change the bar's label (e.g. "epoch 2/3")."""
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, description=text)

    def advance(self, steps: int = 1, loss: float | None = None) -> None:
        """Count steps; `loss` updates a running mean shown on the bar."""
        if loss is not None:
            self.loss = loss if self.loss is None else 0.95 * self.loss + 0.05 * loss
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, advance=steps, stats=self._stats())

    def set_metric(self, value: float) -> None:
        """Show the latest validation metric."""
        self.metric = value
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, stats=self._stats())

    def note(self, message: str) -> None:
        """Print one line to stderr (above the bar when it is live)."""
        self.console.print(message, highlight=False, markup=False)
