"""Progress of a run: generations, the entity being trained, and its optimizer steps."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.progress import Progress as RichBar


class Progress:
    """What the loop reports; the base class ignores everything."""

    def notice(self, text: str) -> None:
        """A line worth knowing before the run starts (e.g. its disk estimate)."""

    def start_run(self, generations: int, entities: Sequence[str]) -> None: ...
    def generation_start(self, t: int) -> None: ...
    def generation_done(self, t: int, skipped: bool = False) -> None: ...
    def phase(self, text: str) -> None: ...
    def train_start(self, t: int, entity: str, steps: int) -> None: ...
    def train_step(self, step: int, total: int) -> None: ...
    def finish(self) -> None: ...


NullProgress = Progress


def progress_bars(console: Optional[Console] = None) -> RichBar:
    """The rich display RichProgress draws on (one per console: runs side by side share one)."""
    return RichBar(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console or Console(stderr=True),
        transient=False,
    )


class RichProgress(Progress):
    """Two bars: generations of the run, and the current training or evaluation phase.

    `bars`: a display shared with other runs (`progress_bars`), started and stopped by its
    owner; by default the run has one of its own."""

    def __init__(
        self,
        label: str = "run",
        console: Optional[Console] = None,
        note: Optional[str] = None,
        bars: Optional[RichBar] = None,
    ):
        self.label = label
        self.note = note  # printed once the run has started (after its input was validated)
        self.own = bars is None
        self.bar = progress_bars(console) if bars is None else bars
        self.gens: Optional[TaskID] = None
        self.step_task: Optional[TaskID] = None

    def _named(self, text: str) -> str:
        """A phase's description; on a shared display, with the run's label."""
        return text if self.own else f"{self.label}: {text}"

    @staticmethod
    def _task(task: Optional[TaskID]) -> TaskID:
        assert task is not None, "start_run() adds the progress tasks"
        return task

    def notice(self, text: str) -> None:
        self.note = f"{self.note}\n{text}" if self.note else text

    def start_run(self, generations: int, entities: Sequence[str]) -> None:
        if self.note:
            self.bar.console.print(self.note, highlight=False)
        if self.own:
            self.bar.start()
        self.gens = self.bar.add_task(f"{self.label}: generations", total=generations)
        self.step_task = self.bar.add_task(self._named("starting"), total=1)

    def generation_done(self, t: int, skipped: bool = False) -> None:
        self.bar.advance(self._task(self.gens))

    def phase(self, text: str) -> None:
        self.bar.update(self._task(self.step_task), description=self._named(text), completed=0, total=1)

    def train_start(self, t: int, entity: str, steps: int) -> None:
        self.bar.update(
            self._task(self.step_task), description=self._named(f"gen {t}: training {entity}"), completed=0, total=steps
        )

    def train_step(self, step: int, total: int) -> None:
        self.bar.update(self._task(self.step_task), completed=step, total=total)

    def finish(self) -> None:
        self.bar.update(self._task(self.step_task), description=self._named("done"), completed=1, total=1)
        if self.own:
            self.bar.stop()
