"""The interactive training workflow of the paper's Figure 1, backend-agnostic.

Generation 0: each entity trains the shared initial model on D~k and D* (weights beta,
1-beta). Generation t >= 1: every model of generation t-1 completes prompts of its own
private task (the pool D_tk); each entity then trains on n examples of the mixture of
D~k, D*, D_t1..D_tK (see mixing.py). After each generation every model is scored on every
task's test split and completes the first prompts of every dataset for the embedding
metrics. Every random choice is seeded from (run seed, generation, entity, purpose), and
every step's output is a file, so a resumed run reproduces an uninterrupted one.

Metrics that need a loaded model (task accuracy, reference perplexity) are injected, since
the loop sits below the metrics: `model_metrics(ModelEvaluation)` is called for every model
of the generation, after its losses and completions, and loads the model only if it needs
it (`ModelEvaluation.model`); it writes its own files and skips what exists.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Optional, Protocol

import numpy as np
import pandas as pd

from crossgen.config import RunConfig
from crossgen.data import Example, ExperimentData, derive_seed, synthetic_source
from crossgen.io import read_jsonl, write_jsonl, write_table
from crossgen.mixture import choose_prompts, get_paradigm, mixture
from crossgen.workflow.progress import NullProgress, Progress
from crossgen.workflow.store import RunStore

# What a seed is for; part of the seed derivation, so never renumber.
TRAIN, MIX, POOL, COMPLETE, INIT = range(5)


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
    already loaded), so a callback that finds its files written costs nothing."""

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
class EntityTask:
    """One entity's part of one phase ('pool', 'train' or 'evaluate') of generation t.

    `arg` is the phase's input: for 'pool' the entries to complete (lean pools) or None for
    the whole pool; for 'evaluate' whether losses.csv is still to be written."""

    phase: Literal["pool", "train", "evaluate"]
    t: int
    k: int
    arg: Any = None


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
    ):
        self.cfg = cfg
        self.data = data
        self.backend = backend
        self.store = store
        self.progress = progress or NullProgress()
        self.evaluate_hook = evaluate_hook
        self.model_metrics = model_metrics
        self.executor = executor  # None: entity after entity, in this process
        self._pool_cache: Optional[tuple[int, list[list[Example]]]] = None
        self.names = [e.name for e in cfg.entities]
        self.paradigm = get_paradigm(cfg.mixing.paradigm)

    # -- the whole run ---------------------------------------------------------------
    def run(self, initial_model=None) -> RunStore:
        if not self.store.initial_dir.exists():
            model = initial_model or self.backend.initial_model(
                self.real_texts(self.data), derive_seed(self.cfg.seed, INIT)
            )
            model.save(self.store.initial_dir)
        kill_point("initial")
        self.store.refresh_tables()  # repairs tables of a run killed between a mark and a refresh
        total = self.cfg.generations + 1
        self.progress.start_run(total, self.names)
        for t in range(total):
            if self.store.is_complete(t):
                self.progress.generation_done(t, skipped=True)
                continue
            started = time.perf_counter()
            self.progress.generation_start(t)
            self.generation(t)
            self.store.mark_complete(t, time.perf_counter() - started, self._pool_counts(t))
            self.store.refresh_tables()
            if self.cfg.checkpoints == "needed":
                self.store.prune_models(keep={0, t})
            kill_point(f"gen{t}.complete")
            self.progress.generation_done(t)
        self.progress.finish()
        return self.store

    def generation(self, t: int) -> None:
        """The phases of generation t, each as K entity tasks run by the executor."""
        if t >= 1 and self._pool_needed(t):
            missing = [j for j, name in enumerate(self.names) if not self.store.pool_path(t, name).exists()]
            needed = self._drawn_entries(t) if missing and self._lean() else None
            self._run([EntityTask("pool", t, j, None if needed is None else needed[j]) for j in missing])
        untrained = [k for k, name in enumerate(self.names) if not self.store.model_dir(t, name).exists()]
        self._run([EntityTask("train", t, k) for k in untrained])
        self._evaluate(t)

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
            self._make_pool(t, k, task.arg)
            kill_point(f"gen{t}.pool.{name}")
            return None
        if task.phase == "train":
            self._train(t, k, self._pools(t) if t >= 1 and self._pool_needed(t) else [])
            kill_point(f"gen{t}.train.{name}")
            return None
        return self._evaluate_entity(t, k, need_losses=task.arg)

    # -- steps -------------------------------------------------------------------------
    def _pool_prompts(self, t: int, j: int) -> list:
        """The prompts of D_tj (a seeded choice from entity j's private training data)."""
        rng = np.random.default_rng(derive_seed(self.cfg.seed, t, j, POOL))
        return choose_prompts(self.data.private[j].train, self.cfg.generation.num_prompts, rng)

    def _make_pool(self, t: int, j: int, entries: Optional[list[int]] = None) -> None:
        """D_tj: model j of generation t-1 completes prompts of its own private task; with
        `entries`, only those entries of the pool (lean pools), each row keeping its index."""
        name = self.names[j]
        self.progress.phase(f"gen {t}: {name} writes its synthetic data")
        prompts = self._pool_prompts(t, j)
        index = list(range(len(prompts))) if entries is None else entries
        chosen = [prompts[i] for i in index]
        model = self.backend.load(self.store.model_dir(t - 1, name))
        completions = model.generate(chosen, self.cfg.generation, seed=derive_seed(self.cfg.seed, t, j, POOL, 1))
        source = synthetic_source(name, t - 1)
        rows = [{"prompt": p, "answer": c, "source": source} for p, c in zip(chosen, completions)]
        if entries is not None:
            rows = [{**row, "index": i} for row, i in zip(rows, index)]
        write_jsonl(self.store.pool_path(t, name), rows)

    def _lean(self) -> bool:
        """Lean pools: only the entries some update draws are completed. Exact in distribution
        when the paradigm draws a sample from the newest pools only: the draw depends on the
        pools' sizes, not their text, so it is made first, with the same seeds as training."""
        return self.cfg.generation.lean and self.paradigm.samples and not self.paradigm.pool_history

    def _slots(self, t: int) -> list[list[Example]]:
        """Pools of placeholders (answer None), one per entry, for drawing before completing."""
        return [
            [Example(p, None, f"slot:{j}:{i}") for i, p in enumerate(self._pool_prompts(t, j))]
            for j in range(len(self.names))
        ]

    def _drawn_entries(self, t: int) -> list[list[int]]:
        """For each pool j, the sorted entries that some entity's update at generation t draws."""
        slots = self._slots(t)
        drawn: list[set[int]] = [set() for _ in self.names]
        for k in range(len(self.names)):
            for example in self._training_set(t, k, slots)[0]:
                if example.source.startswith("slot:"):
                    _, j, i = example.source.split(":")
                    drawn[int(j)].add(int(i))
        return [sorted(d) for d in drawn]

    def _pool_counts(self, t: int) -> dict:
        """Completions generated vs the full pool, per entity (the manifest keeps them)."""
        if t == 0 or not self._pool_needed(t):
            return {}
        counts = {}
        for j, name in enumerate(self.names):
            path = self.store.pool_path(t, name)
            if path.exists():
                with open(path) as fh:
                    generated = sum(1 for line in fh if line.strip())
                pool = min(self.cfg.generation.num_prompts, len(self.data.private[j].train))  # as choose_prompts
                counts[name] = {"generated": generated, "pool": pool}
        return {"pools": counts}

    def _pool_needed(self, t: int) -> bool:
        """Whether any entity trains on D_t (now, or later when pools accumulate)."""
        last = self.cfg.generations if self.paradigm.pool_history else t
        return any(self.cfg.weights("alpha", k)[s] > 0 for k in range(self.cfg.K) for s in range(t, last + 1))

    def _pools(self, t: int) -> list[list[Example]]:
        """Each entity's pool as seen at generation t (all earlier pools for 'accumulate'). A
        lean pool is returned at full size, entries never completed left as placeholders."""
        if self._lean():
            pools = self._slots(t)
            for j, name in enumerate(self.names):
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
        """Entity k's examples (and loss weights) at generation t, drawn with its own seed."""
        alpha = self.cfg.weights("alpha", k)[t]
        beta = self.cfg.weights("beta", k)[t]
        components = mixture(alpha, beta, self.data.private[k].train, self.data.public.train, pools, self.names)
        rng = np.random.default_rng(derive_seed(self.cfg.seed, t, k, MIX))
        return self.paradigm.training_set(components, self._draw_size(t), rng)

    def _draw_size(self, t: int) -> int:
        """mixing.n, or in a lean run of an optimizer-loop backend only the examples the
        optimizer sees: any part of an i.i.d. draw is an i.i.d. draw, so training on the
        first steps x batch x accumulation of n draws equals, in distribution, drawing that
        many (the paper draws 12,500 and sees 400)."""
        n = self.cfg.mixing.n
        if self.cfg.generation.lean and getattr(self.backend, "STEPPED", False):
            tcfg = self.cfg.training_for(t)
            return min(n, tcfg.max_steps * tcfg.per_device_train_batch_size * tcfg.gradient_accumulation_steps)
        return n

    def _train(self, t: int, k: int, pools: list[list[Example]]) -> None:
        name = self.names[k]
        examples, weights = self._training_set(t, k, pools)
        if any(e.answer is None for e in examples):  # a lean pool's draw changed between planning and training
            raise RuntimeError(f"generation {t}, entity {name}: drew a pool entry that was not completed")
        start = (
            self.store.initial_dir
            if t == 0 or self.cfg.model.restart_each_generation
            else self.store.model_dir(t - 1, name)
        )
        model = self.backend.load(start)
        tcfg = self.cfg.training_for(t)
        self.progress.train_start(t, name, tcfg.max_steps)
        model.train(
            examples,
            tcfg,
            seed=derive_seed(self.cfg.seed, t, k, TRAIN),
            weights=weights,
            progress=self.progress.train_step,
        )
        model.save(self.store.model_dir(t, name))

    def _evaluate(self, t: int) -> None:
        """losses.csv (every model on every task), completions for the embeddings, and the
        injected model metrics."""
        need_losses = not self.store.losses_path(t).exists()
        results = self._run([EntityTask("evaluate", t, k, need_losses) for k in range(len(self.names))])
        if need_losses:
            rows = [row for entity_rows in results for row in entity_rows]
            write_table(self.store.losses_path(t), pd.DataFrame(rows, columns=["generation", "model", "task", "loss"]))
        kill_point(f"gen{t}.losses")
        if self.evaluate_hook is not None:
            self.evaluate_hook(self.store, t)

    def _evaluate_entity(self, t: int, k: int, need_losses: bool) -> list[dict]:
        """Entity k's loss rows (if `need_losses`), completions and model metrics."""
        ev, name = self.cfg.evaluation, self.names[k]
        need_completions = ev.embedding_prompts > 0 and not self.store.completions_path(t, name).exists()
        if not (need_losses or need_completions):
            self._model_metrics(t, k, None)
            return []
        self.progress.phase(f"gen {t}: evaluating {name}")
        model = self.backend.load(self.store.model_dir(t, name))
        rows = []
        if need_losses:
            for task in self.data.tasks:
                test = task.test[: ev.test_size] if ev.test_size else task.test
                rows.append(
                    {"generation": t, "model": name, "task": task.name, "loss": model.score(test, ev.batch_size)}
                )
        if need_completions:
            self._completions(t, k, model)
        self._model_metrics(t, k, model)
        return rows

    def _model_metrics(self, t: int, k: int, model) -> None:
        """The injected model metrics of entity k's generation-t model (`model` if loaded)."""
        if self.model_metrics is None:
            return
        name = self.names[k]
        load = lambda: self.backend.load(self.store.model_dir(t, name))
        self.model_metrics(ModelEvaluation(self.cfg, self.store, self.data, self.backend, t, k, name, load, model))
        kill_point(f"gen{t}.metrics.{name}")

    def _completions(self, t: int, k: int, model) -> None:
        ev = self.cfg.evaluation
        rows = []
        for i, task in enumerate(self.data.tasks):
            examples = task.test[: ev.embedding_prompts]
            prompts = [e.prompt for e in examples]
            outputs = model.generate(
                prompts,
                self.cfg.generation,
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
