"""Where a sweep's runs execute: in this process, in a process pool, or as Ray tasks.

The unit of work is a batch: one or more runs of the same cell, executed one after the
other by `run_batch` (batching amortises per-task overhead for runs that take well under a
second, such as the linear backend's). Every run is an ordinary run directory written by
`run_experiment(..., resume=True)`: a run whose manifest says complete is skipped, a partial
one continues where it stopped. A run's failure is caught and returned as its result, so it
never stops the other runs. Each start is appended to DIR/starts.log (one line, flushed).

A shared generation 0 (`crossgen.sweep.grid.shared_generation0`) is a batch of its own, a
run with T = 0 that is no run of the sweep (its start goes to DIR/generation0/starts.log,
its result to no tracker); every executor starts the runs that copy it only once it is
complete (`Dependencies`), and fails them with its error if it failed.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import socket
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

STARTS = "starts.log"
GENERATION0_STARTS = "generation0/starts.log"  # the starts of the shared generations 0

Result = dict[str, Any]


@dataclass(eq=False)
class Batch:
    """Runs of one cell that execute together; resources are per run (they run in sequence)."""

    cell: str
    # {"cell", "seed", "dir", "config" (a JSON-able dict)}, and "generation0_from" (the dir of
    # the shared generation 0 the run starts from), or "shared": true (a shared generation 0)
    tasks: list[dict[str, Any]]
    cpus: float = 1.0
    gpus: float = 0.0

    @property
    def shared(self) -> bool:
        """A shared generation 0 (one task), not runs of the sweep."""
        return bool(self.tasks[0].get("shared"))


# -- the work itself (runs inside workers) -------------------------------------------------
def _manifest(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((Path(run_dir) / "manifest.json").read_text())
    except (OSError, ValueError):
        return {}


def is_complete(run_dir: Path) -> bool:
    return _manifest(run_dir).get("status") == "complete"


def has_generation0(run_dir: Path) -> bool:
    return _manifest(run_dir).get("generations", {}).get("0", {}).get("status") == "complete"


def log_start(sweep_dir: Path, cell: str, seed: int, log: str = STARTS) -> None:
    line = f"{time.time():.6f}\t{cell}\t{seed}\t{socket.gethostname()}\t{os.getpid()}\n"
    (Path(sweep_dir) / log).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(Path(sweep_dir) / log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())  # one O_APPEND write: lines of parallel workers never mix
    finally:
        os.close(fd)


def run_one(task: dict[str, Any], sweep_dir: str) -> Result:
    from crossgen.config import RunConfig
    from crossgen.experiment import run_experiment
    from crossgen.workflow.store import RunStore

    run_dir = Path(sweep_dir) / task["dir"]
    result: Result = {
        "cell": task["cell"],
        "seed": task["seed"],
        "dir": task["dir"],
        "status": "done",
        "error": None,
        "seconds": 0.0,
        "host": socket.gethostname(),
        "pid": os.getpid(),
    }
    if is_complete(run_dir):
        result["status"] = "skipped"
        return result
    started = time.perf_counter()
    try:
        cfg = RunConfig.model_validate(task["config"])
        shared = bool(task.get("shared"))
        if (run_dir / "config.yaml").is_file():  # a partial run continues with the config it began with,
            saved = RunStore(run_dir).config()  # even if only its resources (where it runs) changed since;
            if (  # a shared generation 0 serves whatever else changed, if its key did not
                saved.generation0_key() == cfg.generation0_key()
                if shared
                else saved.model_dump(exclude={"resources"}) == cfg.model_dump(exclude={"resources"})
            ):
                cfg = saved
        log_start(Path(sweep_dir), task["cell"], task["seed"], GENERATION0_STARTS if shared else STARTS)
        source = task.get("generation0_from")
        copy = Path(sweep_dir) / source if source and not has_generation0(run_dir) else None
        run_experiment(cfg, run_dir, resume=True, generation0_from=copy)
    except Exception as exc:  # a failed run is a result, not the end of the sweep
        result.update(
            status="failed",
            error=f"{type(exc).__name__}: {exc}",
            traceback="".join(traceback.format_exception(exc)[-6:]),
        )
    result["seconds"] = time.perf_counter() - started
    return result


def run_batch(tasks: Sequence[dict[str, Any]], sweep_dir: str, threads: Optional[int] = None) -> list[Result]:
    """Run `tasks` in order; with `threads`, cap BLAS/OpenMP threads of this worker to it."""
    if threads is None:
        return [run_one(t, sweep_dir) for t in tasks]
    import sys

    from threadpoolctl import threadpool_limits

    os.environ["OMP_NUM_THREADS"] = str(threads)  # read by torch when this worker first imports it
    if "torch" in sys.modules:  # a reused worker (Ray) that imported torch for an earlier task
        sys.modules["torch"].set_num_threads(threads)
    with threadpool_limits(limits=threads):
        return [run_one(t, sweep_dir) for t in tasks]


def threads_of(task: dict[str, Any]) -> int:
    """A parallel worker's thread budget: resources.threads, else its CPUs (at least 1)."""
    res = task["config"].get("resources", {})
    return int(res.get("threads") or max(1, int(res.get("cpus", 1))))


def crash_results(batch: Batch, sweep_dir: str, error: str) -> list[Result]:
    """Results of a batch whose worker died: its finished runs count, the others failed."""
    out = []
    for task in batch.tasks:
        done = is_complete(Path(sweep_dir) / task["dir"])
        out.append(
            {
                "cell": task["cell"],
                "seed": task["seed"],
                "dir": task["dir"],
                "status": "done" if done else "failed",
                "error": None if done else error,
                "seconds": 0.0,
                "host": None,
                "pid": None,
            }
        )
    return out


# -- executors ---------------------------------------------------------------------------
OnResult = Callable[[Result], None]
Tick = Callable[[int], None]  # called now and then with the number of runs executing


class Dependencies:
    """Holds back the batches whose runs start from a shared generation 0 of this invocation
    until it is complete; the runs whose shared generation 0 failed fail with its error,
    without running. Every executor reports each finished batch here (`deliver`)."""

    def __init__(self, batches: list[Batch], sweep_dir: str, on_result: OnResult):
        self.sweep_dir, self.on_result = sweep_dir, on_result
        self.pending = {b.tasks[0]["dir"] for b in batches if b.shared}  # not finished yet
        self.failed: dict[str, Result] = {}  # dir -> the failed result of a shared generation 0
        self.ready = [b for b in batches if not self._waits(b)]
        self.waiting = [b for b in batches if self._waits(b)]

    def _waits(self, batch: Batch) -> bool:
        return any(task.get("generation0_from") in self.pending for task in batch.tasks)

    def deliver(self, batch: Batch, results: list[Result]) -> list[Batch]:
        """Report a finished batch's results (a run's to `on_result`); returns the batches it
        frees to start."""
        if not batch.shared:
            for result in results:
                self.on_result(result)
            return []
        for result in results:
            self.pending.discard(result["dir"])
            if result["status"] == "failed":
                self.failed[result["dir"]] = result
        freed = [b for b in self.waiting if not self._waits(b)]
        self.waiting = [b for b in self.waiting if self._waits(b)]
        return [b for b in map(self._without_failed, freed) if b is not None]

    def _without_failed(self, batch: Batch) -> Optional[Batch]:
        """`batch` without the runs whose shared generation 0 failed (reported failed here)."""
        keep = []
        for task in batch.tasks:
            cause = self.failed.get(task.get("generation0_from", ""))
            if cause is None:
                keep.append(task)
                continue
            error = f"its shared generation 0 ({cause['dir']}) failed: {cause['error']}"
            result = crash_results(Batch(batch.cell, [task]), self.sweep_dir, error)[0]
            self.on_result({**result, "traceback": cause.get("traceback")})
        if len(keep) == len(batch.tasks):
            return batch
        return Batch(batch.cell, keep, batch.cpus, batch.gpus) if keep else None


class SequentialExecutor:
    """One run after the other in this process (no thread caps: the run uses its config).
    The runs of a shared generation 0 follow it directly."""

    name = "local"
    parallelism = 1

    def run(self, batches: list[Batch], sweep_dir: str, on_result: OnResult, tick: Tick) -> None:
        deps = Dependencies(batches, sweep_dir, on_result)
        queue = deps.ready
        while queue:
            batch = queue.pop(0)
            results = []
            for task in batch.tasks:
                tick(1)
                results.append(run_one(task, sweep_dir))
                if not batch.shared:  # a run's result as soon as it is done
                    deps.deliver(batch, results[-1:])
            if batch.shared:
                queue[:0] = deps.deliver(batch, results)
        tick(0)

    def close(self) -> None:
        pass


def _worker_init() -> None:
    """Pool workers die with the sweep (so a killed sweep leaves no orphan writing a run)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def machine_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


class ProcessExecutor:
    """A pool of `workers` processes (default: the machine's CPUs / the runs' CPUs).

    A worker that dies (killed, out of memory) breaks the whole pool in concurrent.futures
    (the other workers are killed too). Then the finished runs count as done and the others
    go to a fresh pool; a run that was executing during `max_crashes` breakages is reported
    failed, so one crash does not fail every pending run and a crashing run does not loop.
    """

    name = "process"
    max_crashes = 2
    max_restarts = 20

    def __init__(self, workers: int):
        self.parallelism = workers
        self.pool = self._new_pool()

    def _new_pool(self) -> cf.ProcessPoolExecutor:
        import multiprocessing

        return cf.ProcessPoolExecutor(
            max_workers=self.parallelism, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_init
        )

    def run(self, batches: list[Batch], sweep_dir: str, on_result: OnResult, tick: Tick) -> None:
        logs = [Path(sweep_dir) / STARTS, Path(sweep_dir) / GENERATION0_STARTS]
        deps = Dependencies(batches, sweep_dir, on_result)
        queue, restarts = deps.ready, 0
        crashes: dict[tuple[str, int], int] = {}
        while queue:
            offsets = [log.stat().st_size if log.exists() else 0 for log in logs]
            broken = self._run_pool(queue, sweep_dir, deps, tick)
            if not broken:
                break
            restarts += 1
            # in this round: where the dead worker may have been
            started = set().union(*(_started_since(log, offset) for log, offset in zip(logs, offsets)))
            queue = []
            for batch, error in broken.items():
                left, results = [], []
                for task in batch.tasks:
                    key = (task["cell"], task["seed"])
                    if is_complete(Path(sweep_dir) / task["dir"]):
                        results.append(crash_results(Batch(batch.cell, [task]), sweep_dir, "")[0])
                        continue
                    if key in started:  # the crash's cause, or killed with the broken pool: retry once
                        crashes[key] = crashes.get(key, 0) + 1
                    if crashes.get(key, 0) >= self.max_crashes or restarts > self.max_restarts:
                        results.append(crash_results(Batch(batch.cell, [task]), sweep_dir, error)[0])
                    else:
                        left.append(task)
                if left:
                    queue.append(Batch(batch.cell, left, batch.cpus, batch.gpus))
                queue += deps.deliver(batch, results)  # the finished ones (done, or failed for good)
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = self._new_pool()
        tick(0)

    def _run_pool(self, batches: list[Batch], sweep_dir: str, deps: Dependencies, tick: Tick) -> dict:
        """Run batches, and those their shared generations 0 free, on the current pool; returns
        {batch: error} of those a dead worker took down."""
        pending: dict[cf.Future, Batch] = {}
        broken: dict[Batch, str] = {}

        def submit(batch: Batch) -> None:
            try:
                pending[self.pool.submit(run_batch, batch.tasks, sweep_dir, threads_of(batch.tasks[0]))] = batch
            except BrokenProcessPool as exc:  # a worker died since: the next pool runs it
                broken[batch] = f"worker died: {type(exc).__name__}: {exc}"

        for batch in batches:
            submit(batch)
        try:
            while pending:
                tick(min(len(pending), self.parallelism))  # a batch runs its runs one at a time
                done, _ = cf.wait(pending, timeout=0.5, return_when=cf.FIRST_COMPLETED)
                for future in done:
                    batch = pending.pop(future)
                    try:
                        results = future.result()
                    except BrokenProcessPool as exc:  # a worker process died (killed, out of memory)
                        broken[batch] = f"worker died: {type(exc).__name__}: {exc}"
                        continue
                    except Exception as exc:  # e.g. the batch could not be sent to the worker
                        results = crash_results(batch, sweep_dir, f"{type(exc).__name__}: {exc}")
                    for freed in deps.deliver(batch, results):
                        submit(freed)
        except BaseException:
            for future in pending:
                future.cancel()
            raise
        return broken

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def _started_since(log: Path, offset: int) -> set[tuple[str, int]]:
    if not log.exists():
        return set()
    with open(log, "rb") as fh:
        fh.seek(offset)
        lines = fh.read().decode(errors="replace").splitlines()
    out = set()
    for line in lines:
        parts = line.split("\t")
        if len(parts) >= 3:
            out.add((parts[1], int(parts[2])))
    return out


class RayExecutor:
    """Each batch a Ray task with the cell's CPUs and GPUs (so LM cells land on GPU nodes).

    Joins the cluster at `address` (or RAY_ADDRESS), else starts Ray on this machine
    (`workers` CPUs, default all); an already initialised Ray (e.g. a test's) is reused.
    The sweep directory must be on a filesystem that every node sees.
    """

    name = "ray"

    def __init__(self, address: Optional[str] = None, workers: Optional[int] = None):
        import ray

        self.ray = ray
        self.owned = not ray.is_initialized()
        if self.owned:
            kwargs: dict[str, Any] = {"include_dashboard": False, "configure_logging": False, "log_to_driver": True}
            if address:
                ray.init(address=address, **kwargs)
            else:
                ray.init(num_cpus=workers, **kwargs)
        self.resources = ray.cluster_resources()
        self.parallelism = max(1, int(self.resources.get("CPU", 1)))
        self.local = self.owned and not address and not os.environ.get("RAY_ADDRESS")

    def check(self, batches: list[Batch]) -> None:
        """A local Ray cannot grow: refuse cells that need more than it has."""
        from crossgen.errors import InputError

        for b in batches:
            for key, need in (("CPU", b.cpus), ("GPU", b.gpus)):
                have = self.resources.get(key, 0.0)
                if need > have and self.local:
                    raise InputError(
                        f"resources.{key.lower()}s in cell {b.cell}",
                        need,
                        f"at most the {have:g} {key}s of the local Ray (or --ray-address of a cluster that has them)",
                    )

    def run(self, batches: list[Batch], sweep_dir: str, on_result: OnResult, tick: Tick) -> None:
        ray = self.ray
        remote = ray.remote(run_batch)
        pending = {}
        deps = Dependencies(batches, sweep_dir, on_result)

        def submit(b: Batch) -> None:
            ref = remote.options(
                num_cpus=b.cpus, num_gpus=b.gpus, max_retries=1, name=f"crossgen-sweep:{b.cell}"
            ).remote(b.tasks, sweep_dir, threads_of(b.tasks[0]))
            pending[ref] = b

        for b in deps.ready:
            submit(b)
        try:
            while pending:
                tick(self._in_flight(pending))
                ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0.5)
                for ref in ready:
                    batch = pending.pop(ref)
                    try:
                        results = ray.get(ref)
                    except Exception as exc:  # the worker or its node died
                        results = crash_results(batch, sweep_dir, f"ray task failed: {type(exc).__name__}: {exc}")
                    for freed in deps.deliver(batch, results):
                        submit(freed)
            tick(0)
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise

    def _in_flight(self, pending: dict) -> int:
        """Batches that fit the cluster's CPUs, one run each (an estimate: Ray does not say)."""
        cpus, running = 0.0, 0
        for b in pending.values():
            if cpus + b.cpus > self.parallelism:
                break
            cpus += b.cpus
            running += 1
        return running

    def close(self) -> None:
        if self.owned:
            self.ray.shutdown()


def make_executor(
    kind: str, workers: Optional[int] = None, ray_address: Optional[str] = None, cpus_per_run: float = 1.0
):
    from crossgen.errors import InputError

    if workers is not None and workers < 1:
        raise InputError("--workers", workers, "a positive number of parallel runs")
    if kind == "local" and (workers or 1) == 1:
        return SequentialExecutor()
    if kind in ("local", "process"):
        return ProcessExecutor(workers or max(1, machine_cpus() // max(1, int(cpus_per_run))))
    if kind == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise InputError(
                "--executor", kind, "local or process (ray is not installed: pip install 'crossgen[ray]')"
            ) from None
        return RayExecutor(ray_address, workers)
    raise InputError("--executor", kind, "local, process or ray")
