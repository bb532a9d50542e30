"""Where a sweep's runs execute: in this process, in a process pool, or as Ray tasks.

The unit of work is a batch: one or more runs of the same cell, executed one after the
other by `run_batch` (batching amortises per-task overhead for runs that take well under a
second, such as the linear backend's). Every run is an ordinary run directory written by
`run_experiment(..., resume=True)`: a run whose manifest says complete is skipped, a partial
one continues where it stopped. A run's failure is caught and returned as its result, so it
never stops the other runs. Each start is appended to DIR/starts.log (one line, flushed).
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

Result = dict[str, Any]


@dataclass(eq=False)
class Batch:
    """Runs of one cell that execute together; resources are per run (they run in sequence)."""

    cell: str
    tasks: list[dict[str, Any]]  # {"cell", "seed", "dir", "config" (a JSON-able dict)}
    cpus: float = 1.0
    gpus: float = 0.0


# -- the work itself (runs inside workers) -------------------------------------------------
def is_complete(run_dir: Path) -> bool:
    try:
        return json.loads((Path(run_dir) / "manifest.json").read_text()).get("status") == "complete"
    except (OSError, ValueError):
        return False


def log_start(sweep_dir: Path, cell: str, seed: int) -> None:
    line = f"{time.time():.6f}\t{cell}\t{seed}\t{socket.gethostname()}\t{os.getpid()}\n"
    fd = os.open(Path(sweep_dir) / STARTS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
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
        if (run_dir / "config.yaml").is_file():  # a partial run continues with the config it began with,
            saved = RunStore(run_dir).config()  # even if only its resources (where it runs) changed since
            if saved.model_dump(exclude={"resources"}) == cfg.model_dump(exclude={"resources"}):
                cfg = saved
        log_start(Path(sweep_dir), task["cell"], task["seed"])
        run_experiment(cfg, run_dir, resume=True)
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


class SequentialExecutor:
    """One run after the other in this process (no thread caps: the run uses its config)."""

    name = "local"
    parallelism = 1

    def run(self, batches: list[Batch], sweep_dir: str, on_result: OnResult, tick: Tick) -> None:
        for batch in batches:
            for task in batch.tasks:
                tick(1)
                on_result(run_one(task, sweep_dir))
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
        log = Path(sweep_dir) / STARTS
        queue, restarts = list(batches), 0
        crashes: dict[tuple[str, int], int] = {}
        while queue:
            offset = log.stat().st_size if log.exists() else 0
            broken = self._run_pool(queue, sweep_dir, on_result, tick)
            if not broken:
                break
            restarts += 1
            started = _started_since(log, offset)  # in this round: where the dead worker may have been
            queue = []
            for batch, error in broken.items():
                left = []
                for task in batch.tasks:
                    key = (task["cell"], task["seed"])
                    if is_complete(Path(sweep_dir) / task["dir"]):
                        on_result(crash_results(Batch(batch.cell, [task]), sweep_dir, "")[0])
                        continue
                    if key in started:  # the crash's cause, or killed with the broken pool: retry once
                        crashes[key] = crashes.get(key, 0) + 1
                    if crashes.get(key, 0) >= self.max_crashes or restarts > self.max_restarts:
                        on_result(crash_results(Batch(batch.cell, [task]), sweep_dir, error)[0])
                    else:
                        left.append(task)
                if left:
                    queue.append(Batch(batch.cell, left, batch.cpus, batch.gpus))
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = self._new_pool()
        tick(0)

    def _run_pool(self, batches: list[Batch], sweep_dir: str, on_result: OnResult, tick: Tick) -> dict:
        """Run batches on the current pool; returns {batch: error} of those a dead worker took down."""
        pending = {self.pool.submit(run_batch, b.tasks, sweep_dir, threads_of(b.tasks[0])): b for b in batches}
        broken: dict[Batch, str] = {}
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
                    for r in results:
                        on_result(r)
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
        for b in batches:
            ref = remote.options(
                num_cpus=b.cpus, num_gpus=b.gpus, max_retries=1, name=f"crossgen-sweep:{b.cell}"
            ).remote(b.tasks, sweep_dir, threads_of(b.tasks[0]))
            pending[ref] = b
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
                    for r in results:
                        on_result(r)
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
