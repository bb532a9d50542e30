"""Run a sweep into a directory: validate, skip finished runs, execute, aggregate, report.

    DIR/sweep.yaml                 the sweep, its base config inlined
    DIR/cells.csv                  cell id -> axis values
    DIR/cells/<cell>/seed_<s>/     an ordinary run directory per cell and seed
    DIR/generation0/<key>/         a generation 0 shared by the runs with one generation-0 key
                                   (a run directory with T = 0; not a run of the sweep)
    DIR/starts.log                 one line per run start (time, cell, seed, host, pid)
    DIR/status.json                done / running / failed / pending counts and time left
    DIR/failures.jsonl             the runs that failed in the latest invocation, with errors
    DIR/aggregate.csv              mean and 95% CI over seeds (see aggregate.py)
    DIR/report.html, DIR/*.png     heatmaps and curves (see report.py)

A run is done when its manifest says complete; nothing else decides, so a sweep killed at
any point continues where it stopped, and a finished run is never started again.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from crossgen.errors import InputError
from crossgen.io import write_json, write_text
from crossgen.sweep.executors import STARTS, Batch, Result, has_generation0, is_complete, make_executor
from crossgen.sweep.grid import RunSpec, Sweep, shared_generation0
from crossgen.workflow.loop import kill_point

FAILURES = "failures.jsonl"
STATUS = "status.json"


@dataclass
class SweepResult:
    out: Path
    total: int
    done: int = 0
    failed: list[Result] = field(default_factory=list)
    ran: int = 0  # runs executed by this invocation
    run_seconds: float = 0.0  # their time inside run_experiment, summed
    skipped: int = 0  # runs already complete before it
    seconds: float = 0.0
    aggregate: Optional[Path] = None
    report: Optional[Path] = None


def check_existing(sweep: Sweep, out: Path) -> None:
    """Refuse (before writing anything) a DIR whose run directories hold other configs."""
    saved_sweep = out / "sweep.yaml"
    if saved_sweep.is_file() and yaml.safe_load(saved_sweep.read_text()) == _plain(sweep.resolved()):
        return  # the same sweep: its run directories were made from these configs
    try:
        loader = yaml.CSafeLoader
    except AttributeError:  # pragma: no cover - PyYAML without libyaml
        loader = yaml.SafeLoader
    for run in sweep.runs:
        saved = out / run.rel_dir / "config.yaml"
        if not saved.is_file():
            continue
        old = yaml.load(saved.read_text(), Loader=loader)
        new = run.config.model_dump(mode="json")
        if isinstance(old, dict):
            old.pop("resources", None)  # where a run executes does not change its results
        new.pop("resources", None)
        if old != new:
            raise InputError(
                "--out",
                str(out),
                f"a new directory, or one holding this same sweep ({run.rel_dir} was run with a different config)",
            )


def _plain(data: Any) -> Any:
    """`data` as it reads back from YAML (tuples become lists, and so on)."""
    return yaml.safe_load(yaml.safe_dump(data, sort_keys=False))


def plan(sweep: Sweep, out: Path, batch: Optional[int], parallelism: int) -> tuple[list[Batch], set[tuple[str, int]]]:
    """Batches of the runs still to do, and the (cell, seed) of the runs already complete.

    First the shared generations 0 that runs still to do need and that are not complete
    (one batch each); the runs that copy one say so (`generation0_from`)."""
    todo: dict[str, list[RunSpec]] = {}
    done: set[tuple[str, int]] = set()
    for cell in sweep.cells:
        for run in cell.runs:
            if is_complete(out / run.rel_dir):
                done.add((run.cell, run.seed))
            else:
                todo.setdefault(cell.id, []).append(run)
    source: dict[tuple[str, int], str] = {}  # (cell, seed) -> the dir of its shared generation 0
    batches = []
    for group in shared_generation0(sweep):
        needed = False
        for r in group.runs:
            if (r.cell, r.seed) not in done and not has_generation0(out / r.rel_dir):
                source[(r.cell, r.seed)] = group.rel_dir
                needed = True
        if needed and not is_complete(out / group.rel_dir):
            task = {"cell": group.rel_dir, "seed": group.config.seed, "dir": group.rel_dir, "shared": True}
            res = group.config.resources
            batches.append(
                Batch(group.rel_dir, [{**task, "config": group.config.model_dump(mode="json")}], res.cpus, res.gpus)
            )
    total_todo = sum(len(v) for v in todo.values())
    size = batch or auto_batch(sweep, total_todo, parallelism)
    for cell_id, runs in todo.items():
        res = runs[0].config.resources
        for i in range(0, len(runs), size):
            tasks = []
            for r in runs[i : i + size]:
                task = {"cell": r.cell, "seed": r.seed, "dir": r.rel_dir, "config": r.config.model_dump(mode="json")}
                if (r.cell, r.seed) in source:
                    task["generation0_from"] = source[(r.cell, r.seed)]
                tasks.append(task)
            batches.append(Batch(cell_id, tasks, cpus=res.cpus, gpus=res.gpus))
    return batches, done


def auto_batch(sweep: Sweep, todo: int, parallelism: int) -> int:
    """1 run per task for language models; for the linear backend (runs of ~1 s), enough runs
    per task to amortise the overhead while keeping >= 4 tasks per worker."""
    if any(c.config.model.backend != "linear" for c in sweep.cells):
        return 1
    per_cell = max(len(c.runs) for c in sweep.cells)
    return max(1, min(per_cell, todo // (4 * max(1, parallelism))))


class Tracker:
    """Counts, status.json, failures.jsonl and the live progress line."""

    def __init__(self, sweep: Sweep, out: Path, already: set[tuple[str, int]], executor: str, console=None):
        self.sweep, self.out, self.executor = sweep, out, executor
        self.total = len(sweep.runs)
        self.already = len(already)
        self.finished = 0  # runs that finished in this invocation (done or failed)
        self.done = len(already)
        self.failed: list[Result] = []
        self.running = 0
        self.seconds_in_runs = 0.0
        self.started = time.perf_counter()
        self.last_status = 0.0
        self.cell_total = {c.id: len(c.runs) for c in sweep.cells}
        self.cell_done = {c.id: sum((r.cell, r.seed) in already for r in c.runs) for c in sweep.cells}
        self.cells_done = sum(self.cell_done[c] == self.cell_total[c] for c in self.cell_total)
        self.cell_failed: set[str] = set()
        self.log = out / STARTS
        self.log_offset = self.log.stat().st_size if self.log.exists() else 0
        self.in_flight: set[tuple[str, int]] = set()  # started (per starts.log), not finished
        self.finished_runs: set[tuple[str, int]] = set()
        self.display = _Display(console)

    # -- events ---------------------------------------------------------------------
    def tick(self, running: int) -> None:
        """`running`: the executor's estimate; the starts in starts.log are the truth."""
        self._read_starts()
        self.running = max(running, len(self.in_flight))
        self._update()

    def _read_starts(self) -> None:
        try:
            with open(self.log, "rb") as fh:
                fh.seek(self.log_offset)
                data = fh.read()
        except OSError:
            return
        end = data.rfind(b"\n") + 1  # a line still being written waits for the next tick
        self.log_offset += end
        for line in data[:end].decode(errors="replace").splitlines():
            parts = line.split("\t")
            if len(parts) >= 3 and parts[2].isdigit() and (key := (parts[1], int(parts[2]))) not in self.finished_runs:
                self.in_flight.add(key)

    def running_cells(self) -> int:
        cells = {cell for cell, _ in self.in_flight}
        return len(cells) or min(self.running, 1)  # before a run's start line is read

    def result(self, r: Result) -> None:
        if r["status"] == "failed":
            self.failed.append(r)
            self.cell_failed.add(r["cell"])
            with open(self.out / FAILURES, "a") as fh:
                fh.write(
                    json.dumps(
                        {
                            "cell": r["cell"],
                            "seed": r["seed"],
                            "dir": r["dir"],
                            "error": r["error"],
                            "traceback": r.get("traceback"),
                            "host": r.get("host"),
                            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                        }
                    )
                    + "\n"
                )
                fh.flush()
            self.display.message(f"[red]failed[/] {r['cell']} seed {r['seed']}: {r['error']}")
        else:
            self.done += 1
            self.cell_done[r["cell"]] += 1
            self.cells_done += self.cell_done[r["cell"]] == self.cell_total[r["cell"]]
        self.finished += 1
        self.finished_runs.add((r["cell"], r["seed"]))
        self.in_flight.discard((r["cell"], r["seed"]))
        self.seconds_in_runs += r.get("seconds") or 0.0
        self.running = max(0, self.running - 1)
        self._update()
        kill_point(f"sweep.finished{self.finished}")  # fault injection for the resume tests

    # -- derived --------------------------------------------------------------------
    def eta(self) -> Optional[float]:
        if self.finished == 0:
            return None
        rate = self.finished / max(1e-9, time.perf_counter() - self.started)
        return (self.total - self.done - len(self.failed)) / rate

    def counts(self) -> dict[str, Any]:
        cells_done = self.cells_done
        elapsed = time.perf_counter() - self.started
        eta = self.eta()
        return {
            "name": self.sweep.name,
            "executor": self.executor,
            "runs": {
                "total": self.total,
                "done": self.done,
                "running": self.running,
                "failed": len(self.failed),
                "pending": max(0, self.total - self.done - len(self.failed) - self.running),
            },
            "cells": {
                "total": len(self.cell_total),
                "done": cells_done,
                "running": self.running_cells(),
                "failed": len(self.cell_failed),
            },
            "this_invocation": {
                "finished": self.finished,
                "already_done": self.already,
                "elapsed_s": round(elapsed, 3),
                "runs_per_s": round(self.finished / elapsed, 4) if elapsed > 0 else None,
            },
            "eta_s": None if eta is None else round(eta, 1),
            "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }

    def _update(self, force: bool = False) -> None:
        now = time.perf_counter()
        c = self.counts()
        self.display.update(c)
        if force or now - self.last_status >= 2.0:
            self.last_status = now
            write_json(self.out / STATUS, {**c, "finished": False})

    def close(self) -> dict[str, Any]:
        self.running = 0
        c = self.counts()
        write_json(self.out / STATUS, {**c, "finished": c["runs"]["done"] == self.total})
        self.display.stop(c)
        return c


def _fmt_time(seconds: Optional[float]) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "--"
    s = round(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def progress_line(c: dict[str, Any]) -> str:
    r, cells = c["runs"], c["cells"]
    rate = c["this_invocation"]["runs_per_s"]
    return (
        f"cells {cells['done']}/{cells['total']} done, {cells['running']} running, {cells['failed']} with failures | "
        f"runs {r['done']}/{r['total']} "
        f"done, {r['running']} running, {r['failed']} failed | "
        f"{(rate or 0):.2f} runs/s | time left {_fmt_time(c['eta_s'])}"
    )


class _Display:
    """A live line on a terminal; elsewhere (logs, tests) a line every 10 s."""

    def __init__(self, console=None):
        from rich.console import Console

        self.console = console or Console(stderr=True)
        self.live = None
        self.last = 0.0
        if self.console.is_terminal:
            from rich.live import Live
            from rich.text import Text

            self.live = Live(Text("starting"), console=self.console, refresh_per_second=4, transient=False)
            self.live.start()

    def update(self, c: dict[str, Any]) -> None:
        if self.live is not None:
            from rich.text import Text

            self.live.update(Text(progress_line(c)))
        elif time.perf_counter() - self.last >= 10.0:
            self.last = time.perf_counter()
            self.console.print(progress_line(c), highlight=False, soft_wrap=True)

    def message(self, text: str) -> None:
        self.console.print(text, highlight=False, soft_wrap=True)

    def stop(self, c: dict[str, Any]) -> None:
        if self.live is not None:
            from rich.text import Text

            self.live.update(Text(progress_line(c)))
            self.live.stop()
        else:
            self.console.print(progress_line(c), highlight=False, soft_wrap=True)


def _lock(out: Path):
    """An exclusive lock on DIR for the life of the sweep (two sweeps never share a DIR)."""
    import fcntl

    fh = open(out / ".sweep.lock", "w")  # noqa: SIM115 -- held (and locked) for the whole sweep; the caller closes it
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        raise InputError("--out", str(out), "a sweep directory that no other running sweep is using") from None
    return fh


def write_cells(sweep: Sweep, out: Path) -> None:
    import pandas as pd

    from crossgen.sweep.aggregate import axis_columns

    cols = axis_columns(sweep)
    rows = [
        {"cell": c.id, **{cols[a]: c.labels[a] for a in sweep.axes}, "seeds": " ".join(str(r.seed) for r in c.runs)}
        for c in sweep.cells
    ]
    write_text(out / "cells.csv", pd.DataFrame(rows).to_csv(index=False))


def run_sweep(
    sweep: Sweep,
    out: Path,
    executor: str = "local",
    workers: Optional[int] = None,
    ray_address: Optional[str] = None,
    batch: Optional[int] = None,
    report: bool = True,
    console=None,
) -> SweepResult:
    """Run (or continue) `sweep` into `out`; returns the counts and the written files.

    executor: "local" (one run after another in this process; with `workers` > 1 the same as
    "process"), "process" (a spawn-based process pool: call it from a script under
    `if __name__ == "__main__":`), or "ray" (`ray_address`, else RAY_ADDRESS, else a local
    Ray; an already initialised Ray is used as it is). `batch`: runs of a cell per task.
    Invalid input raises InputError before anything is written.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError("--out", str(out), "a directory (new, or holding this sweep)")
    if batch is not None and batch < 1:
        raise InputError("--batch", batch, "a positive number of runs per task")
    check_existing(sweep, out)
    cpus = max(c.config.resources.cpus for c in sweep.cells)
    ex = make_executor(executor, workers, ray_address, cpus)
    started = time.perf_counter()
    try:
        batches, already = plan(sweep, out, batch, ex.parallelism)
        if hasattr(ex, "check"):
            ex.check(batches)
        out.mkdir(parents=True, exist_ok=True)
        lock = _lock(out)
        try:
            write_text(out / "sweep.yaml", yaml.safe_dump(sweep.resolved(), sort_keys=False))
            write_cells(sweep, out)
            write_text(out / FAILURES, "")
            tracker = Tracker(sweep, out, already, ex.name, console)
            try:
                ex.run(batches, str(out.resolve()), tracker.result, tracker.tick)
            finally:
                tracker.close()
            result = SweepResult(
                out,
                tracker.total,
                done=tracker.done,
                failed=tracker.failed,
                ran=tracker.finished,
                run_seconds=tracker.seconds_in_runs,
                skipped=len(already),
            )
            if report:
                result.aggregate, result.report = finish(sweep, out)
        finally:
            lock.close()
    finally:
        ex.close()
    result.seconds = time.perf_counter() - started
    return result


def finish(sweep: Sweep, out: Path) -> tuple[Optional[Path], Optional[Path]]:
    """aggregate.csv and the report from whatever runs are complete."""
    from crossgen.sweep.aggregate import aggregate_sweep
    from crossgen.sweep.report import write_sweep_report

    table = aggregate_sweep(sweep, out)
    if table.empty:
        return None, None
    agg = out / "aggregate.csv"
    write_text(agg, table.to_csv(index=False, float_format="%.10g"))
    return agg, write_sweep_report(sweep, out, table)
