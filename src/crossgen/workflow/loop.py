"""The interactive training workflow of the paper's Figure 1, backend-agnostic.

Generation 0: each entity trains the shared initial model on D~k and D* (weights beta,
1-beta). Generation t >= 1: every model of generation t-1 completes prompts of its own
private task (the pool D_tk), and the pool's filters (filters.py) keep some of them; each
entity then trains on n examples of the mixture of D~k, D*, D_t1..D_tK (see mixture.py),
entity k reading pool j with weight alpha W[k, j] (`graph`: the paper's complete graph,
W = 1/K, by default). With `fresh_real`, D~k and D* are new examples every generation
(disjoint chunks of each dataset, cut by `prepare`). After each generation every model is
scored on every task's test split (loss and bits per byte) and completes the first prompts of
every dataset for the embedding metrics. Entities may have their own model, training and
sampling (each loaded and saved through its own backend, `entities.py`) and may sit out
generations (`entities[i].generations`): then their model carries over and their pool is
absent, and readers renormalise over the pools that exist (`Workflow._pool_row`). Every
random choice is seeded from (run seed, generation, entity, purpose), and every step's output
is a file, so a resumed run reproduces an uninterrupted one.

Metrics that need a loaded model (task accuracy, reference perplexity) are injected, since
the loop sits below the metrics: `model_metrics(ModelEvaluation)` is called for every model
of the generation, after its losses and completions, and loads the model only if it needs
it (`ModelEvaluation.model`); it writes its own files and skips what exists.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal, Optional, Protocol

import numpy as np
import pandas as pd

from crossgen.backends.base import score_of
from crossgen.config import RunConfig, TaskConfig
from crossgen.data import Example, ExperimentData, FreshReal, derive_seed, fresh_chunks, synthetic_source
from crossgen.errors import InputError
from crossgen.io import read_jsonl, write_json, write_jsonl, write_table
from crossgen.mixture import choose_examples, get_paradigm, mixture
from crossgen.workflow.entities import entity_backends, initial_models, owners
from crossgen.workflow.filters import PoolContext, apply_filters, counts_path
from crossgen.workflow.progress import NullProgress, Progress
from crossgen.workflow.store import RunStore

# What a seed is for; part of the seed derivation, so never renumber.
TRAIN, MIX, POOL, COMPLETE, INIT, FRESH = range(6)
POOL_COUNTS = "pool_counts"  # gen_NNN/pool_counts.csv -> DIR/pool_counts.csv
POOL_COUNT_COLUMNS = ["generation", "entity", "pool", "generated", "kept"]
# losses.csv; bits_per_byte (appended last, so older run directories still read) is NaN for
# a backend without text (the linear one)
LOSS_COLUMNS = ["generation", "model", "task", "loss", "bits_per_byte"]


def interaction_of(cfg: RunConfig) -> Optional[np.ndarray]:
    """The run's interaction matrix W (K x K, rows sum to 1), or None for the complete graph
    (each pool weighs alpha / K exactly, the paper's numbers). `graph` is a topology name of
    `crossgen.theory.graphs`, a matrix, or the path of a matrix file (read here: when the run
    is built, and by each worker that rebuilds it)."""
    from pathlib import Path

    from crossgen.theory.graphs import GRAPHS, interaction, load_graph_file

    spec: Any = cfg.graph
    if isinstance(spec, str) and spec not in GRAPHS:
        if not Path(spec).is_file():
            raise InputError(
                "graph",
                spec,
                f"one of {', '.join(GRAPHS)}, a {cfg.K} x {cfg.K} matrix (rows of numbers >= 0 summing to 1) or "
                "the path of an existing .npy, .csv or .txt file holding one",
            )
        spec = load_graph_file(spec, cfg.K, field="graph")
    return interaction(spec, cfg.K, field="graph")


def prepare(cfg: RunConfig, data: ExperimentData, backend: Any) -> ExperimentData:
    """Check what needs the run's data and backend, and attach the fresh real data; raised
    before anything is written (`crossgen.workflow.run.build` calls it).

    - `graph`: a known topology, or a valid K x K matrix (`interaction_of`);
    - `fresh_real`: cut every dataset into T + 1 disjoint chunks (`fresh_real_data`), or an
      InputError naming how many examples are needed and how many exist;
    - the `verify` filter needs an entity task with answers to check; `likelihood` a text
      backend.
    """
    interaction_of(cfg)
    for k, entity in enumerate(cfg.entities):
        for i, spec in enumerate(cfg.filters_for(k)):
            where = f"entities.{k}.filters.{i}.name" if entity.filters is not None else f"generation.filters.{i}.name"
            if spec.name == "likelihood" and not getattr(backend, "TEXT", False):
                raise InputError(where, "likelihood", "a filter for a text backend (one with token likelihoods)")
            if spec.name == "verify":
                _check_verifiable(where, cfg.entities[k].task.name, data.private[k].train)
    if cfg.fresh_real and data.fresh is None:
        data.fresh = fresh_real_data(cfg, data)
    return data


def _check_verifiable(where: str, task_name: str, examples: list[Example]) -> None:
    from crossgen.tasks import get_task

    task = get_task(task_name)
    try:
        task.verify(str(examples[0].answer), examples[0])
    except NotImplementedError:
        raise InputError(
            where, "verify", f"filters without verify for task {task_name} (it has no answers to check)"
        ) from None


def fresh_real_data(cfg: RunConfig, data: ExperimentData) -> FreshReal:
    """Every dataset's training data of generations 0..T for `fresh_real`.

    Chunk 0 is the run's usual training split (so generation 0 is unchanged); chunks 1..T
    are disjoint seeded draws without replacement (`crossgen.data.fresh_chunks`) from the
    rest of the dataset's whole training split: loaded without `train_size` for a dataset,
    generated at twice the size the run needs for a generated task. Dataset i (entities in
    order, then the public data, i = K) is permuted with seed (run seed, 0, i, FRESH).
    """
    from crossgen.tasks import get_task, load_task

    chunks = cfg.generations + 1

    def cut(i: int, task_cfg: TaskConfig, split: Any, what: str) -> list[list[Example]]:
        n = len(split.train)
        size = 2 * chunks * n if get_task(task_cfg.name).generated else None
        dataset = load_task(task_cfg.model_copy(update={"train_size": size}), cfg.seed).train
        keys = {(e.prompt, e.answer) for e in dataset}
        if any((e.prompt, e.answer) not in keys for e in split.train):
            raise InputError(
                "fresh_real",
                True,
                f"false with model.backend {cfg.model.backend!r} (its training data for {what} are not "
                f"drawn from the task's train split)",
            )
        tests = {e.prompt for e in split.test}
        return fresh_chunks(what, dataset, split.train, tests, chunks, derive_seed(cfg.seed, 0, i, FRESH))

    private = [
        cut(k, e.task, data.private[k], f"entity {e.name} (task {e.task.name})") for k, e in enumerate(cfg.entities)
    ]
    public = cut(cfg.K, cfg.public, data.public, f"the public data (task {cfg.public.name})")
    return FreshReal(private, public)


def kill_point(name: str) -> None:
    """Fault injection for the tests: at a named point, SIGKILL ourselves (CROSSGEN_KILL_AT,
    the resume tests) or SIGSTOP until continued (CROSSGEN_STOP_AT, the lock tests)."""
    if os.environ.get("CROSSGEN_KILL_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
    if os.environ.get("CROSSGEN_STOP_AT") == name:
        os.kill(os.getpid(), signal.SIGSTOP)


@dataclass
class ModelEvaluation:
    """One model of generation t as the evaluation phase hands it to `model_metrics`.

    `model` loads entity k's generation-t model on first use (or returns the one the loop
    already loaded), so a callback that finds its files written costs nothing. `backend` is
    entity k's own backend (the run's unless `entities[k].model` sets another model)."""

    cfg: RunConfig
    store: RunStore
    data: ExperimentData
    backend: Any
    t: int
    k: int
    name: str
    load: Callable[[], Any] = field(repr=False)
    _model: Any = field(default=None, repr=False)

    @property
    def model(self) -> Any:
        if self._model is None:
            self._model = self.load()
        return self._model


ModelMetrics = Callable[[ModelEvaluation], object]  # its return value is ignored


@dataclass(frozen=True)
class PoolOrder:
    """A pool to write: the entries to complete (lean pools), or None for the whole pool."""

    entries: Optional[list[int]] = None


@dataclass(frozen=True)
class EntityTask:
    """One entity's part of one phase ('pool' or 'update') of generation t.

    'update' trains the entity's model (unless its checkpoint exists), evaluates it and, with
    `next_pool`, writes its pool of generation t + 1, in one task: an entity that finishes
    first goes on instead of waiting for the slowest one at a barrier between the steps.
    `arg` is the phase's input: for 'pool' a `PoolOrder`; for 'update' whether losses.csv is
    still to be written (the task then returns the entity's loss rows)."""

    phase: Literal["pool", "update"]
    t: int
    k: int
    arg: Any = None
    next_pool: Optional[PoolOrder] = None


class EntityExecutor(Protocol):
    """Runs a phase's entity tasks (`Workflow.run_task`), here or elsewhere: executors.py."""

    name: str

    def map(self, workflow: Workflow, tasks: Sequence[EntityTask]) -> list[Any]: ...


class Workflow:
    """Runs (or resumes) one experiment into a run directory."""

    def __init__(
        self,
        cfg: RunConfig,
        data: ExperimentData,
        backend,
        store: RunStore,
        progress: Optional[Progress] = None,
        evaluate_hook: Optional[Callable[[RunStore, int], object]] = None,  # return value ignored
        model_metrics: Optional[ModelMetrics] = None,
        executor: Optional[EntityExecutor] = None,
        backends: Optional[list[Any]] = None,
    ):
        self.cfg = cfg
        self.data = data
        self.backend = backend  # the run's `model`
        # entity k's own backend (entities.k.model; the run's when it has none)
        self.backends = backends if backends is not None else entity_backends(cfg, backend)
        self.owners = owners(cfg)  # whose initial folder each entity starts from
        self.sampling = [cfg.generation_for(k) for k in range(cfg.K)]
        self.part = [[cfg.participates(k, t) for t in range(cfg.generations + 1)] for k in range(cfg.K)]
        self.store = store
        self.progress = progress or NullProgress()
        self.evaluate_hook = evaluate_hook
        self.model_metrics = model_metrics
        self.executor = executor  # None: entity after entity, in this process
        self._hooks: Optional[ThreadPoolExecutor] = None  # the overlapped evaluate hook (see _update)
        self._hook_futures: dict[int, Future] = {}  # generation -> its overlapped evaluate hook
        self._pending: Optional[tuple[int, float]] = None  # (t, start) of a generation awaiting its hook
        self._pool_cache: Optional[tuple[int, list[list[Example]]]] = None
        self.names = [e.name for e in cfg.entities]
        self.paradigm = get_paradigm(cfg.mixing.paradigm)
        self.W = interaction_of(cfg)  # None: the complete graph, alpha / K per pool
        self.filters = [cfg.filters_for(k) for k in range(cfg.K)]
        self._alpha = cfg.schedule("alpha")
        if cfg.fresh_real and data.fresh is None:  # built without `prepare` (run.build calls it)
            prepare(cfg, data, backend)

    # -- the whole run ---------------------------------------------------------------
    def run(self, initial: Optional[dict[Optional[str], Any]] = None) -> RunStore:
        """Run every generation not yet complete; `initial`: starting models built already (by
        owner, `entities.initial_models`), written if their folder is missing."""
        needed = [o for o in dict.fromkeys(self.owners) if not self.store.initial_dir_of(o).exists()]
        models = dict(initial or {})
        if absent := [o for o in needed if o not in models]:
            seed = derive_seed(self.cfg.seed, INIT)
            models.update(initial_models(self.cfg, self.backends, self.real_texts(self.data), seed, absent))
        for owner in needed:
            models[owner].save(self.store.initial_dir_of(owner))
        del models, initial  # every phase loads what it needs: no extra copy held for the run (GPU memory)
        kill_point("initial")
        self.store.refresh_tables()  # repairs tables of a run killed between a mark and a refresh
        self.store.refresh_tables([POOL_COUNTS])
        total = self.cfg.generations + 1
        self.progress.start_run(total, self.names)
        try:
            for t in range(total):
                if self.store.is_complete(t):
                    self.progress.generation_done(t, skipped=True)
                    continue
                started = time.perf_counter()
                self.progress.generation_start(t)
                self.generation(t)
                if t in self._hook_futures:  # its metrics still run: marked before t + 1's evaluation
                    self._pending = (t, started)
                else:
                    self._finish(t, started)
            self._finish_pending()
        finally:
            if self._hooks is not None:
                self._hooks.shutdown(wait=True)
                self._hooks = None
        self.progress.finish()
        return self.store

    def _kept(self, t: int) -> set[int]:
        """Generations whose checkpoints `checkpoints: needed | latest` keeps once t is complete:
        t and later (resume), and generation 0 for 'needed' (a generation-0 reference model,
        and runs that copy generation 0)."""
        later = set(range(t, self.cfg.generations + 1))
        return later | {0} if self.cfg.checkpoints == "needed" else later

    def _finish_pending(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            self._finish(*pending)

    def _finish(self, t: int, started: float) -> None:
        """Mark generation t complete once its evaluate hook is done (see `_update`)."""
        future = self._hook_futures.pop(t, None)
        if future is not None:
            future.result()  # re-raises the hook's error
        self.store.mark_complete(t, time.perf_counter() - started, {**self._pool_counts(t), **self._updates(t)})
        self.store.refresh_tables()
        self.store.refresh_tables([POOL_COUNTS])
        if self.cfg.checkpoints != "all":  # generation t + 1's models may exist already
            self.store.prune_models(keep=self._kept(t))
        kill_point(f"gen{t}.complete")
        self.progress.generation_done(t)

    def generation(self, t: int) -> None:
        """The phases of generation t, each as K entity tasks run by the executor."""
        if t >= 1 and self._pool_needed(t):  # written by generation t - 1's updates, unless resumed
            orders = self._pool_orders(t)
            self._run([EntityTask("pool", t, j, order) for j, order in enumerate(orders) if order is not None])
            self._write_pool_counts(t)
        self._update(t)

    def _pool_orders(self, t: int) -> list[Optional[PoolOrder]]:
        """For each entity j, its pool D_tj (t >= 1) if some entity reads it and it is not
        written yet (None otherwise; for every j when the run ends before t)."""
        if t > self.cfg.generations or not self._pool_needed(t):
            return [None] * len(self.names)
        missing = [
            j
            for j, name in enumerate(self.names)
            if self._pool_needed(t, j) and not self.store.pool_path(t, name).exists()
        ]
        needed = self._drawn_entries(t) if missing and self._lean() else None
        return [
            PoolOrder(None if needed is None else needed[j]) if j in missing else None for j in range(len(self.names))
        ]

    def _run(self, tasks: list[EntityTask]) -> list:
        if not tasks:
            return []
        if self.executor is None or self.executor.name == "sequential":
            return [self.run_task(task) for task in tasks]
        self.progress.phase(f"gen {tasks[0].t}: {tasks[0].phase}, {len(tasks)} entities on {self.executor.name}")
        return self.executor.map(self, tasks)

    def run_task(self, task: EntityTask) -> Any:
        """One entity's part of a phase (what executors run; see executors.py)."""
        t, k, name = task.t, task.k, self.names[task.k]
        if task.phase == "pool":
            self._write_pool(t, k, task.arg)
            return None
        if not self.store.model_dir(t, name).exists():
            if self.part[k][t]:
                self._train(t, k, self._pools(t) if t >= 1 and self._pool_needed(t) else [])
            else:  # sits out: its model of t - 1 is its model of t
                write_json(self.store.updates_path(t, name), {"steps": 0, "carried_over_from": t - 1})
                self.store.carry_over(t, name)
            kill_point(f"gen{t}.train.{name}")
        rows = self._evaluate_entity(t, k, need_losses=task.arg)
        if task.next_pool is not None and not self.store.pool_path(t + 1, name).exists():
            self._write_pool(t + 1, k, task.next_pool)
        return rows

    def _write_pool(self, t: int, j: int, order: PoolOrder) -> None:
        self._make_pool(t, j, order.entries)
        kill_point(f"gen{t}.pool.{self.names[j]}")

    # -- steps -------------------------------------------------------------------------
    def _pool_examples(self, t: int, j: int) -> list[Example]:
        """The real examples whose prompts make D_tj (a seeded choice from entity j's private
        training data of generation t)."""
        rng = np.random.default_rng(derive_seed(self.cfg.seed, t, j, POOL))
        return choose_examples(self.data.private_train(j, t), self.cfg.generation.num_prompts, rng)

    def _pool_prompts(self, t: int, j: int) -> list:
        """The prompts of D_tj."""
        return [e.prompt for e in self._pool_examples(t, j)]

    def _make_pool(self, t: int, j: int, entries: Optional[list[int]] = None) -> None:
        """D_tj: model j of generation t-1 completes prompts of its own private task; with
        `entries`, only those entries of the pool (lean pools), each row keeping its index.
        With filters, the whole pool is completed, rows keep their index, the pool file holds
        the rows the filters keep and `<entity>.counts.json` how many were generated and kept."""
        name = self.names[j]
        self.progress.phase(f"gen {t}: {name} writes its synthetic data")
        examples = self._pool_examples(t, j)
        index = list(range(len(examples))) if entries is None else entries
        chosen = [examples[i].prompt for i in index]
        model = self.backends[j].load(self.store.model_dir(t - 1, name))
        completions = model.generate(chosen, self.sampling[j], seed=derive_seed(self.cfg.seed, t, j, POOL, 1))
        source = synthetic_source(name, t - 1)
        rows = [{"prompt": p, "answer": c, "source": source} for p, c in zip(chosen, completions)]
        filters = self.filters[j]
        if entries is not None or filters:
            rows = [{**row, "index": i} for row, i in zip(rows, index)]
        path = self.store.pool_path(t, name)
        if filters:
            from crossgen.tasks import get_task

            task = get_task(self.cfg.entities[j].task.name) if any(f.name == "verify" for f in filters) else None
            context = PoolContext(name, task, examples, model, self.cfg.evaluation.batch_size)
            rows, counts = apply_filters(filters, rows, context)
            write_json(counts_path(path), counts)  # before the pool: a pool file means both exist
        write_jsonl(path, rows)

    def _lean(self) -> bool:
        """Lean pools: only the entries some update draws are completed. Exact in distribution
        when the paradigm draws a sample from the newest pools only: the draw depends on the
        pools' sizes, not their text, so it is made first, with the same seeds as training.
        A run with pool filters completes whole pools: what survives filtering depends on the
        text, so a draw made before completing would not be the draw from the filtered pool."""
        return (
            self.cfg.generation.lean
            and self.paradigm.samples
            and not self.paradigm.pool_history
            and not any(self.filters)
        )

    def _slots(self, t: int) -> list[list[Example]]:
        """Pools of placeholders (answer None), one per entry, for drawing before completing
        (none for an entity that sits out generation t: it writes no pool)."""
        return [
            [Example(p, None, f"slot:{j}:{i}") for i, p in enumerate(self._pool_prompts(t, j))]
            if self.part[j][t]
            else []
            for j in range(len(self.names))
        ]

    def _drawn_entries(self, t: int) -> list[list[int]]:
        """For each pool j, the sorted entries that some entity's update at generation t draws."""
        slots = self._slots(t)
        drawn: list[set[int]] = [set() for _ in self.names]
        for k in (k for k in range(len(self.names)) if self.part[k][t]):
            for example in self._training_set(t, k, slots)[0]:
                if example.source.startswith("slot:"):
                    _, j, i = example.source.split(":")
                    drawn[int(j)].add(int(i))
        return [sorted(d) for d in drawn]

    def _pool_counts(self, t: int) -> dict:
        """Completions generated vs the full pool, per entity (the manifest keeps them); for a
        filtered pool also how many were kept, after each filter (`steps`) and in the end."""
        if t == 0 or not self._pool_needed(t):
            return {}
        counts = {}
        for j, name in enumerate(self.names):
            path = self.store.pool_path(t, name)
            if path.exists():
                with open(path) as fh:
                    lines = sum(1 for line in fh if line.strip())
                pool = min(self.cfg.generation.num_prompts, len(self.data.private_train(j, t)))  # as choose_examples
                if self.filters[j] and counts_path(path).exists():
                    kept = json.loads(counts_path(path).read_text())
                    counts[name] = {"generated": kept["generated"], "kept": lines, "pool": pool, "steps": kept["steps"]}
                else:
                    counts[name] = {"generated": lines, "pool": pool}
        return {"pools": counts}

    def _write_pool_counts(self, t: int) -> None:
        """gen_NNN/pool_counts.csv: per entity, the pool's size, completions generated and kept."""
        rows = [
            {
                "generation": t,
                "entity": name,
                "pool": c["pool"],
                "generated": c["generated"],
                "kept": c.get("kept", c["generated"]),
            }
            for name, c in self._pool_counts(t).get("pools", {}).items()
        ]
        if rows:
            write_table(self.store.gen_dir(t) / f"{POOL_COUNTS}.csv", pd.DataFrame(rows, columns=POOL_COUNT_COLUMNS))

    def _updates(self, t: int) -> dict:
        """What each entity's update of generation t did (gen_NNN/updates/<entity>.json), for
        the manifest."""
        found = {name: path for name in self.names if (path := self.store.updates_path(t, name)).exists()}
        return {"updates": {name: json.loads(path.read_text()) for name, path in found.items()}} if found else {}

    def _reads(self, k: int, j: int) -> bool:
        """Whether entity k's synthetic share goes partly to pool j (W[k, j] > 0)."""
        return self.W is None or self.W[k, j] > 0

    def _pool_needed(self, t: int, j: Optional[int] = None) -> bool:
        """Whether any entity trains on D_tj (any pool of D_t when j is None), now or later
        when pools accumulate: its writer takes part in generation t, and some entity with
        alpha > 0 that takes part then reads it."""
        last = self.cfg.generations if self.paradigm.pool_history else t
        pools = range(self.cfg.K) if j is None else [j]
        return any(
            self._alpha[s, k] > 0 and self._reads(k, i) and self.part[k][s] and self.part[i][t]
            for k in range(self.cfg.K)
            for s in range(t, last + 1)
            for i in pools
        )

    def _pool_row(self, t: int, k: int) -> tuple[float, Optional[Sequence[float]]]:
        """Entity k's alpha and row of W at generation t over the pools that exist. A pool
        exists when its writer takes part in t (in some generation 1..t when pools
        accumulate); the row is renormalised over those, so the synthetic share stays alpha.
        When no pool it reads exists, alpha is 0: the update is on real data only (beta and
        1 - beta). Every pool existing (always, without a schedule): alpha and W as given."""
        alpha = self.cfg.weights("alpha", k)[t]
        row = None if self.W is None else self.W[k]
        first = 1 if self.paradigm.pool_history else t
        exists = np.array([any(self.part[j][first : t + 1]) for j in range(self.cfg.K)])
        if t == 0 or exists.all():
            return alpha, row
        weights = np.where(exists, np.full(self.cfg.K, 1.0 / self.cfg.K) if row is None else row, 0.0)
        if weights.sum() == 0:
            return 0.0, None
        return alpha, (weights / weights.sum()).tolist()

    def _pools(self, t: int) -> list[list[Example]]:
        """Each entity's pool as seen at generation t (all earlier pools for 'accumulate'). A
        lean pool is returned at full size, entries never completed left as placeholders."""
        if self._lean():
            pools = self._slots(t)
            for j, name in enumerate(self.names):
                if self._pool_needed(t, j):  # a pool nobody reads is never written (nor drawn from)
                    for r in read_jsonl(self.store.pool_path(t, name)):
                        pools[j][r["index"]] = Example(r["prompt"], r["answer"], r["source"])
            return pools
        first = 1 if self.paradigm.pool_history else t
        if self._pool_cache is not None and self._pool_cache[0] == t:  # K trainings in this process
            return self._pool_cache[1]
        pools = [
            [
                Example(r["prompt"], r["answer"], r["source"])
                for s in range(first, t + 1)
                if (path := self.store.pool_path(s, name)).exists()
                for r in read_jsonl(path)
            ]
            for name in self.names
        ]
        self._pool_cache = (t, pools)
        return pools

    def _training_set(self, t: int, k: int, pools: list[list[Example]]) -> tuple[list[Example], Optional[list[float]]]:
        """Entity k's examples (and loss weights) at generation t, drawn with its own seed.

        Pools weigh alpha W[k, j]; a pool its filters emptied weighs nothing (the paradigm
        renormalises over the rest)."""
        alpha, row = self._pool_row(t, k)
        beta = self.cfg.weights("beta", k)[t]
        private, public = self.data.private_train(k, t), self.data.public_train(t)
        components = mixture(alpha, beta, private, public, pools, self.names, row)
        if any(self.filters):
            components = [
                dataclasses.replace(c, weight=0.0) if c.kind == "synthetic" and not c.examples else c
                for c in components
            ]
            if pools and all(c.weight == 0 for c in components):
                raise RuntimeError(
                    f"generation {t}, entity {self.names[k]}: the pool filters kept no completion of any pool it "
                    "reads, and it trains on synthetic data only (alpha = 1)"
                )
        rng = np.random.default_rng(derive_seed(self.cfg.seed, t, k, MIX))
        return self.paradigm.training_set(components, self._draw_size(t, k), rng)

    def _draw_size(self, t: int, k: int) -> int:
        """mixing.n, or in a lean run of an optimizer-loop backend only the examples the
        optimizer sees: any part of an i.i.d. draw is an i.i.d. draw, so training on the
        first steps x batch x accumulation of n draws equals, in distribution, drawing that
        many (the paper draws 12,500 and sees 400)."""
        n = self.cfg.mixing.n
        if self.cfg.generation.lean and getattr(self.backends[k], "STEPPED", False):
            tcfg = self.cfg.training_for(t, k)
            return min(n, tcfg.max_steps * tcfg.per_device_train_batch_size * tcfg.gradient_accumulation_steps)
        return n

    def _train(self, t: int, k: int, pools: list[list[Example]]) -> None:
        name = self.names[k]
        examples, weights = self._training_set(t, k, pools)
        if any(e.answer is None for e in examples):  # a lean pool's draw changed between planning and training
            raise RuntimeError(f"generation {t}, entity {name}: drew a pool entry that was not completed")
        start = (
            self.store.initial_dir_of(self.owners[k])
            if t == 0 or self.cfg.model_for(k).restart_each_generation
            else self.store.model_dir(t - 1, name)
        )
        model = self.backends[k].load(start)
        tcfg = self.cfg.training_for(t, k)
        self.progress.train_start(t, name, tcfg.max_steps)
        stats = model.train(
            examples,
            tcfg,
            seed=derive_seed(self.cfg.seed, t, k, TRAIN),
            weights=weights,
            progress=self.progress.train_step,
        )
        # before the checkpoint: a checkpoint on disk means its record exists too
        record = {"steps": stats.steps, "tokens": stats.tokens, "final_loss": stats.final_loss}
        write_json(self.store.updates_path(t, name), {**record, "seconds": round(stats.seconds, 3)})
        model.save(self.store.model_dir(t, name))
        del model
        # the entity's previous checkpoint, once nothing can need it: its generation is complete
        # (with a parallel executor t - 1 is marked complete later and pruned then, `_finish`)
        if self.cfg.checkpoints != "all" and t >= 1 and t - 1 not in self._kept(t) and self.store.is_complete(t - 1):
            self.store.prune_model(t - 1, name)

    def _update(self, t: int) -> None:
        """Every entity's update (training, unless its checkpoint exists) and evaluation: its
        losses (losses.csv holds every model on every task), its completions for the
        embeddings and the injected model metrics, then its pool of generation t + 1 (when
        some entity reads it); then the evaluate hook."""
        need_losses = not self.store.losses_path(t).exists()
        orders = self._pool_orders(t + 1)
        results = self._run([EntityTask("update", t, k, need_losses, orders[k]) for k in range(len(self.names))])
        if need_losses:
            rows = [row for entity_rows in results for row in entity_rows]
            write_table(self.store.losses_path(t), pd.DataFrame(rows, columns=LOSS_COLUMNS))
        kill_point(f"gen{t}.losses")
        self._finish_pending()  # t - 1 complete before t's hook: it sees what a sequential one sees
        if self.evaluate_hook is None:
            return
        if self.executor is None or self.executor.name == "sequential":
            self.evaluate_hook(self.store, t)
            return
        # With entities in workers, the driver's metrics of generation t (embeddings, the text
        # families: files of generation t only) overlap generation t + 1's pools and updates,
        # which do not read them; t is marked complete after they are written and before t + 1's
        # hook starts (`_finish_pending`), so every hook sees the sequential run's state.
        if self._hooks is None:
            self._hooks = ThreadPoolExecutor(1, thread_name_prefix="crossgen-metrics")
        self._hook_futures[t] = self._hooks.submit(self.evaluate_hook, self.store, t)

    def _evaluate_entity(self, t: int, k: int, need_losses: bool) -> list[dict]:
        """Entity k's loss rows (if `need_losses`), completions and model metrics."""
        ev, name = self.cfg.evaluation, self.names[k]
        need_completions = ev.embedding_prompts > 0 and not self.store.completions_path(t, name).exists()
        if not (need_losses or need_completions):
            self._model_metrics(t, k, None)
            return []
        self.progress.phase(f"gen {t}: evaluating {name}")
        model = self.backends[k].load(self.store.model_dir(t, name))
        rows = []
        if need_losses:
            for task in self.data.tasks:
                test = task.test[: ev.test_size] if ev.test_size else task.test
                score = score_of(model, test, ev.batch_size)
                row = {"generation": t, "model": name, "task": task.name, "loss": score.loss}
                rows.append({**row, "bits_per_byte": score.bits_per_byte})
        if need_completions:
            self._completions(t, k, model)
        self._model_metrics(t, k, model)
        return rows

    def _model_metrics(self, t: int, k: int, model) -> None:
        """The injected model metrics of entity k's generation-t model (`model` if loaded)."""
        if self.model_metrics is None:
            return
        name = self.names[k]
        backend = self.backends[k]
        load = lambda: backend.load(self.store.model_dir(t, name))
        self.model_metrics(ModelEvaluation(self.cfg, self.store, self.data, backend, t, k, name, load, model))
        kill_point(f"gen{t}.metrics.{name}")

    def _completions(self, t: int, k: int, model) -> None:
        ev = self.cfg.evaluation
        rows = []
        for i, task in enumerate(self.data.tasks):
            examples = task.test[: ev.embedding_prompts]
            prompts = [e.prompt for e in examples]
            outputs = model.generate(
                prompts,
                self.sampling[k],
                seed=derive_seed(self.cfg.seed, t, k, COMPLETE, i),
                max_new_tokens=ev.embedding_max_new_tokens,
            )
            rows += [
                {"dataset": task.name, "index": n, "prompt": e.prompt, "reference": e.answer, "completion": c}
                for n, (e, c) in enumerate(zip(examples, outputs))
            ]
        write_jsonl(self.store.completions_path(t, self.names[k]), rows)

    @staticmethod
    def real_texts(data: ExperimentData) -> list[str]:
        """All real training text of a run: what a from-scratch tokenizer is trained on."""
        return [e.text for task in data.tasks for e in task.train if isinstance(e.prompt, str)]
