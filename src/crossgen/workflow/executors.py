"""Where the K entities of a generation do their work: in this process, in worker
processes, or as Ray tasks.

Given generation t-1, the K entities are independent: the loop (loop.py) runs each phase of
a generation — the K pools, then the K updates (an entity's training, its evaluation and its
pool of the next generation) — as K `EntityTask`s, and an executor runs them. Every task
reads its inputs from the run directory and writes its outputs there (pool files,
checkpoints, completions, metric files); updates also return their loss rows, which the
driver writes as one losses.csv. Every random choice is seeded from (run seed, generation,
entity, purpose), so where a task runs does not change its numbers: with the same torch
thread count, the process and Ray executors give bit-identical files to the sequential one
(tests/test_executors.py).

Workers rebuild the run's `Workflow` from its directory and config once per process and
keep it. A worker that fails or dies fails the generation with an `EntityTaskError` naming
the phase, generation and entity, after the other tasks of the phase have finished; the run
resumes from its files like any interrupted run. Ray needs the run directory on a
filesystem every node sees.
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from crossgen.config import RunConfig
from crossgen.errors import EntityTaskError, InputError
from crossgen.malloc import keep_freed_memory
from crossgen.workflow.loop import EntityTask, ModelMetrics, Workflow
from crossgen.workflow.run import build
from crossgen.workflow.store import RunStore

EXECUTORS = ("sequential", "process", "ray")
# Makes a worker's model-metrics callback from the run config (pickled by reference).
MetricsFactory = Callable[[RunConfig], Optional[ModelMetrics]]


def limit_threads(threads: int) -> None:
    """Cap this process's torch and BLAS/OpenMP threads (parallel workers get their share:
    two processes with two threads each on two cores run three times slower)."""
    from threadpoolctl import threadpool_limits

    os.environ["OMP_NUM_THREADS"] = str(threads)  # read by torch when this process first imports it
    if "torch" in sys.modules:  # a reused worker that imported torch for an earlier task
        sys.modules["torch"].set_num_threads(threads)
    threadpool_limits(limits=threads)


# -- the work itself (runs inside workers) -------------------------------------------------
@dataclass(frozen=True)
class WorkerSpec:
    """What a worker needs to rebuild the driver's workflow."""

    run_dir: str
    config: dict[str, Any]  # RunConfig as JSON
    model_metrics: Optional[MetricsFactory] = None
    threads: Optional[int] = None
    gpus: int = 0  # GPUs of this machine that the process executor spreads entities over


_WORKFLOWS: dict[tuple[str, str], Workflow] = {}  # per worker process: (run dir, config) -> workflow


def _workflow(spec: WorkerSpec) -> Workflow:
    import json

    key = (spec.run_dir, json.dumps(spec.config, sort_keys=True))
    if key not in _WORKFLOWS:
        cfg = RunConfig.model_validate(spec.config)
        data, backend = build(cfg)
        hook = spec.model_metrics(cfg) if spec.model_metrics is not None else None
        _WORKFLOWS[key] = Workflow(cfg, data, backend, RunStore(Path(spec.run_dir)), model_metrics=hook)
    return _WORKFLOWS[key]


def run_entity_task(spec: WorkerSpec, task: EntityTask) -> Any:
    """Run one entity task in this (worker) process."""
    keep_freed_memory()  # a worker of a library call (not started by the CLI) or a Ray worker
    if spec.threads is not None:
        limit_threads(spec.threads)
    if spec.gpus > 1:  # the process executor: entity k on GPU k mod n (Ray sets CUDA_VISIBLE_DEVICES itself)
        import torch

        torch.cuda.set_device(task.k % spec.gpus)
    return _workflow(spec).run_task(task)


def import_modules(modules: Sequence[str], threads: Optional[int]) -> None:
    """A worker's first task: import the backend's libraries (with its thread cap set first,
    as torch reads it on import)."""
    import importlib

    keep_freed_memory()
    if threads is not None:
        limit_threads(threads)
    for name in modules:
        importlib.import_module(name)


def _exit_with_parent(parent: int) -> None:
    """A worker whose driver died (kill -9) exits too, instead of waiting for work forever
    (and holding the driver's output pipes open)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="crossgen-parent-watch").start()


# -- executors -----------------------------------------------------------------------------
class SequentialExecutor:
    """Entity after entity, in this process (the default)."""

    name = "sequential"

    def map(self, workflow: Workflow, tasks: Sequence[EntityTask]) -> list[Any]:
        return [workflow.run_task(task) for task in tasks]

    def close(self) -> None:
        pass


def _gather(workflow: Workflow, tasks: Sequence[EntityTask], results: list[Callable[[], Any]]) -> list[Any]:
    """Every task's result; after all have finished, the first failure as an EntityTaskError."""
    out, failure = [], None
    for task, result in zip(tasks, results):
        try:
            out.append(result())
        except Exception as exc:  # an exception in the task, or its worker died
            cause = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            failure = failure or EntityTaskError(task.phase, task.t, workflow.names[task.k], cause)
            out.append(None)
    if failure is not None:
        raise failure
    return out


class ProcessExecutor:
    """One worker process per entity on this machine (entity k in worker k mod `workers`),
    each with its share of the cores (resources.threads, else cores // workers) and, on a
    machine with several GPUs, entity k on GPU k mod n. Each worker is a pool of its own, so
    one that dies fails only its entity's task; workers start on first use and are kept for
    the next generations."""

    name = "process"

    def __init__(self, workers: int, threads: Optional[int] = None, model_metrics: Optional[MetricsFactory] = None):
        self.workers = max(1, workers)
        self.threads = threads or max(1, (os.cpu_count() or 1) // self.workers)
        self.model_metrics = model_metrics
        self.pools: list[Optional[cf.Executor]] = [None] * self.workers
        self.closed = False
        self._lock = threading.Lock()  # runs side by side share the workers (experiment.py)

    def _spec(self, workflow: Workflow) -> WorkerSpec:
        gpus = 0
        if workflow.cfg.device in ("auto", "cuda") and "torch" in sys.modules:
            torch = sys.modules["torch"]
            gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        config = workflow.cfg.model_dump(mode="json")
        return WorkerSpec(str(workflow.store.root), config, self.model_metrics, self.threads, gpus)

    def _pool(self, k: int) -> cf.Executor:
        with self._lock:  # runs side by side (experiment.py) call this from several threads
            if self.closed:  # a run still going when another failed does not start new workers
                raise RuntimeError("the process executor was closed")
            i = k % self.workers
            pool = self.pools[i]
            if pool is None:
                # The driver's own torch work (the embedding metrics, overlapping the workers'
                # next generation: loop.py) gets the cores the workers leave, at least one.
                limit_threads(max(1, (os.cpu_count() or 1) - self.workers * self.threads))
                # spawn: a fork of a driver that has run torch can deadlock in its thread pools
                context = multiprocessing.get_context("spawn")
                pool = cf.ProcessPoolExecutor(
                    1, mp_context=context, initializer=_exit_with_parent, initargs=(os.getpid(),)
                )
                self.pools[i] = pool
            return pool

    def start(self, modules: Sequence[str]) -> None:
        """Start every worker now, importing `modules` (a backend's WORKER_IMPORTS) while the
        driver prepares the run; a failed import shows again in the first task that needs it."""
        for i in range(self.workers):
            self._pool(i).submit(import_modules, tuple(modules), self.threads)

    def map(self, workflow: Workflow, tasks: Sequence[EntityTask]) -> list[Any]:
        spec = self._spec(workflow)
        pools = [self._pool(task.k) for task in tasks]
        futures = [pool.submit(run_entity_task, spec, task) for pool, task in zip(pools, tasks)]
        try:
            return _gather(workflow, tasks, [f.result for f in futures])
        except EntityTaskError:
            for pool, future in zip(pools, futures):  # cancelled: by close(), its pool is gone already
                if not future.cancelled() and isinstance(future.exception(), BrokenProcessPool):
                    self._drop(pool)  # its worker died: a new one next time
            raise

    def _drop(self, pool: cf.Executor) -> None:
        """Forget a pool whose worker died; not one that another run has put in its place."""
        with self._lock:
            self.pools = [None if p is pool else p for p in self.pools]
        pool.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        with self._lock:
            self.closed = True
            pools, self.pools = self.pools, [None] * self.workers
        for pool in pools:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)


class RayExecutor:
    """Each entity task a Ray task asking for resources.cpus and resources.gpus, so that K
    entities use K GPUs of a node or of a cluster. Joins the cluster at `address` (or
    RAY_ADDRESS), else starts Ray on this machine; an initialised Ray is reused."""

    name = "ray"

    def __init__(
        self,
        cpus: float,
        gpus: float,
        threads: Optional[int] = None,
        address: Optional[str] = None,
        model_metrics: Optional[MetricsFactory] = None,
    ):
        import ray

        self.ray = ray
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "configure_logging": False}
            ray.init(address=address, **kwargs) if address else ray.init(**kwargs)
        have = ray.cluster_resources()
        for key, need in (("CPU", cpus), ("GPU", gpus)):
            if need > have.get(key, 0.0) and not (address or os.environ.get("RAY_ADDRESS")):
                raise InputError(
                    f"resources.{key.lower()}s", need, f"at most the {have.get(key, 0.0):g} {key}s of the local Ray"
                )
        self.cpus, self.gpus = cpus, gpus
        self.threads = threads or max(1, int(cpus))
        self.model_metrics = model_metrics
        self.remote = ray.remote(run_entity_task)

    def map(self, workflow: Workflow, tasks: Sequence[EntityTask]) -> list[Any]:
        spec = WorkerSpec(
            str(workflow.store.root), workflow.cfg.model_dump(mode="json"), self.model_metrics, self.threads
        )
        refs = [
            self.remote.options(
                num_cpus=self.cpus, num_gpus=self.gpus, max_retries=0, name=f"crossgen:{task.phase}:{task.t}:{task.k}"
            ).remote(spec, task)
            for task in tasks
        ]
        return _gather(workflow, tasks, [functools.partial(self.ray.get, ref) for ref in refs])

    def close(self) -> None:
        pass  # Ray stays up for the caller (a cluster, or a session's later runs)


Executor = SequentialExecutor | ProcessExecutor | RayExecutor


def make_executor(
    name: str,
    cfg: RunConfig,
    address: Optional[str] = None,
    model_metrics: Optional[MetricsFactory] = None,
) -> Executor:
    """The executor called `name` for runs of `cfg` (see EXECUTORS)."""
    if name == "sequential":
        return SequentialExecutor()
    if name == "process":
        from crossgen.backends.registry import get_backend

        executor = ProcessExecutor(cfg.K, cfg.resources.threads, model_metrics)
        backends = {cfg.model_for(k).backend for k in range(cfg.K)}
        modules = {m for b in backends for m in getattr(get_backend(b), "WORKER_IMPORTS", ())}
        if modules:
            executor.start(sorted(modules))
        return executor
    if name == "ray":
        return RayExecutor(cfg.resources.cpus, cfg.resources.gpus, cfg.resources.threads, address, model_metrics)
    raise InputError("--executor", name, "one of " + ", ".join(EXECUTORS))
