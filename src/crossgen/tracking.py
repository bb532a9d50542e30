"""Experiment tracking: a run's training curves and per-generation numbers sent to TensorBoard,
Weights & Biases or MLflow (the `tracking` section of a run config; docs/metrics.md).

Two streams, both optional extras of a run that never change what it computes:

- **training curves**, through the transformers Trainer's own reporting (`report_to`): before
  each update the tracker sets `crossgen.backends.hf.train.REPORTING`, so the Trainer logs
  its loss, learning rate and gradient norm every `tracking.logging_steps` optimizer steps, one
  tracker run per (generation, entity): the TensorBoard folder `<dir>/train/gen_NNN/<entity>`,
  the wandb / MLflow run `<run name>/gen_NNN/<entity>`. The loop announces each update through
  `Progress.train_start`, so the tracker wraps the run's progress (`Tracker.progress`).
- **generation numbers**: after each generation's evaluate hook (`Tracker.hook`), every row of
  that generation's tables is one scalar with step = generation (`generation_scalars`):
  `loss/<model>/<task>` (losses.csv), `<metric>/<model>/<dataset>` (metrics/<family>.csv and
  homogenization.csv), `similarity/<model_a>:<model_b>/<dataset>` (similarity.csv),
  `semantic_distance/<model>/<task>` (semantic.csv). Rows whose value is not finite are left out.
  TensorBoard: the folder `<dir>/metrics`; wandb: the run `<run name>` (x axis `generation`);
  MLflow: the parent run `<run name>`, the training runs nested in it.

`open_tracker(cfg, out)` refuses a backend whose package is missing with a one-line
`InputError` (field `tracking.backend`, the pip extra to install) before anything is written;
the tracker writes nothing until the run directory exists.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import math
import os
import re
from collections.abc import Callable
from contextvars import Token
from pathlib import Path
from typing import Any, Optional

import pandas as pd

from crossgen.config import RunConfig
from crossgen.errors import InputError
from crossgen.workflow.progress import NullProgress, Progress
from crossgen.workflow.store import MANIFEST, METRICS, RunStore

Hook = Callable[[RunStore, int], object]  # its return value is ignored

# backend -> (modules it imports, the pip extra that installs them)
PACKAGES: dict[str, tuple[tuple[str, ...], str]] = {
    "tensorboard": (("torch", "tensorboard"), "tracking"),
    "wandb": (("wandb",), "wandb"),
    "mlflow": (("mlflow",), "mlflow"),
}


def check_backend(cfg: RunConfig) -> None:
    """Raise InputError when `tracking.backend` needs a package that is not installed."""
    backend = cfg.tracking.backend
    if backend == "none":
        return
    modules, extra = PACKAGES[backend]
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise InputError(
            "tracking.backend",
            backend,
            f"a tracker whose package is installed ({', '.join(missing)} is not: pip install 'crossgen[{extra}]'), "
            "or none",
        )


def open_tracker(cfg: RunConfig, out: Path) -> Optional[Tracker]:
    """The tracker of a run into `out`, or None without tracking; checks the package first."""
    check_backend(cfg)
    kinds: dict[str, type[Tracker]] = {
        "tensorboard": TensorBoardTracker,
        "wandb": WandbTracker,
        "mlflow": MlflowTracker,
    }
    kind = kinds.get(cfg.tracking.backend)
    return kind(cfg, Path(out)) if kind is not None else None


# -- what is logged ----------------------------------------------------------------------------
def generation_scalars(store: RunStore, t: int) -> dict[str, float]:
    """Every finite value of generation t's tables, by tag (see the module doc)."""
    gen = store.gen_dir(t)
    out: dict[str, float] = {}

    def add(tag: str, value: str) -> None:
        try:
            number = float(value)
        except ValueError:  # empty: no value
            return
        if math.isfinite(number):
            out[tag] = number

    for r in _rows(gen / "losses.csv"):
        add(f"loss/{r['model']}/{r['task']}", r["loss"])
    for r in _rows(gen / "similarity.csv"):
        add(f"similarity/{r['model_a']}:{r['model_b']}/{r['dataset']}", r["cosine"])
    for r in _rows(gen / "homogenization.csv"):
        add(f"{r['metric']}/{r['model']}/{r['dataset']}", r["value"])
    for r in _rows(gen / "semantic.csv"):
        add(f"semantic_distance/{r['model']}/{r['task']}", r["distance"])
    for path in sorted((gen / METRICS).glob("*.csv")):
        for r in _rows(path):
            add(f"{r['metric']}/{r['model']}/{r['dataset']}", r["value"])
    return out


def _rows(path: Path) -> list[dict[str, str]]:
    """A table's rows as written (text: names stay names, numbers are parsed by `float`)."""
    if not path.is_file():
        return []
    return pd.read_csv(path, dtype=str, keep_default_na=False).to_dict("records")


# -- trackers ----------------------------------------------------------------------------------
class Tracker:
    """One run's tracking. Use as a context manager around the run; `hook` and `progress`
    wrap the run's evaluate hook and progress."""

    backend = ""

    def __init__(self, cfg: RunConfig, out: Path):
        self.cfg = cfg
        self.out = Path(out)
        self.project = cfg.tracking.project or cfg.name
        self._token: Optional[Token] = None
        self._env: dict[str, Optional[str]] = {}

    # -- wiring
    def hook(self, inner: Optional[Hook]) -> Hook:
        """`inner` (None: nothing), then every number of the generation logged."""

        def evaluate_and_log(store: RunStore, t: int) -> None:
            if inner is not None:
                inner(store, t)
            self.log(store, t, generation_scalars(store, t))

        return evaluate_and_log

    def progress(self, inner: Optional[Progress]) -> Progress:
        """`inner` (None: silent), with each update announced to the tracker first."""
        return _Announcing(inner or NullProgress(), self.before_update)

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the two streams
    def before_update(self, t: int, entity: str) -> None:
        """Point the Trainer's reporting at the update of `entity` at generation t."""
        if self.cfg.model.backend != "hf":
            return
        from crossgen.backends.hf.train import REPORTING, Reporting

        reporting = Reporting(
            report_to=self.backend,
            run_name=f"{self.cfg.name}/gen_{t:03d}/{entity}",
            logging_dir=self.training_dir(t, entity),
            logging_steps=self.cfg.tracking.logging_steps,
        )
        token = REPORTING.set(reporting)
        if self._token is None:
            self._token = token  # the value before the run, restored by close()

    def training_dir(self, t: int, entity: str) -> Optional[str]:
        return None

    def log(self, store: RunStore, t: int, scalars: dict[str, float]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        if self._token is not None:
            from crossgen.backends.hf.train import REPORTING

            REPORTING.reset(self._token)
            self._token = None
        self._restore_env()

    # -- helpers
    def run_key(self) -> str:
        """16 hex digits naming this run directory (its path and creation time), the same on resume."""
        created = ""
        manifest = self.out / MANIFEST
        if manifest.is_file():
            created = str(json.loads(manifest.read_text()).get("created", ""))
        return hashlib.sha1(f"{self.out.resolve()}|{created}".encode()).hexdigest()[:16]

    def _set_env(self, values: dict[str, str]) -> None:
        """Environment variables the Trainer's reporting callbacks read, until close()."""
        for key, value in values.items():
            self._env.setdefault(key, os.environ.get(key))
            os.environ[key] = value

    def _restore_env(self) -> None:
        for key, value in self._env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._env = {}


class TensorBoardTracker(Tracker):
    """Event files under tracking.dir (default <run dir>/tensorboard): metrics/ and
    train/gen_NNN/<entity>/; `tensorboard --logdir` on the run (or a sweep) shows them all."""

    backend = "tensorboard"

    def __init__(self, cfg: RunConfig, out: Path):
        super().__init__(cfg, out)
        self.root = Path(cfg.tracking.dir) if cfg.tracking.dir else self.out / "tensorboard"
        self._writer: Any = None

    def training_dir(self, t: int, entity: str) -> Optional[str]:
        return str(self.root / "train" / f"gen_{t:03d}" / entity)

    def log(self, store: RunStore, t: int, scalars: dict[str, float]) -> None:
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self.root / "metrics"))
            self._writer.add_text("config", "```\n" + (self.out / "config.yaml").read_text() + "```")
        for tag, value in scalars.items():
            self._writer.add_scalar(tag, value, global_step=t)
        self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        super().close()


class WandbTracker(Tracker):
    """Weights & Biases: a run per update (made by the Trainer's WandbCallback) and a run of the
    generation numbers, all in one group per run directory. Offline with WANDB_MODE=offline."""

    backend = "wandb"

    def __init__(self, cfg: RunConfig, out: Path):
        super().__init__(cfg, out)
        self.dir = cfg.tracking.dir

    def _group(self) -> str:
        return f"{self.cfg.name}-{self.run_key()[:8]}"

    def _finish_active(self) -> None:
        wandb = importlib.import_module("wandb")
        if wandb.run is not None:  # the previous update's run: the next one must be new
            wandb.finish()

    def before_update(self, t: int, entity: str) -> None:
        env = {"WANDB_PROJECT": self.project, "WANDB_RUN_GROUP": self._group()}
        if self.dir:
            Path(self.dir).mkdir(parents=True, exist_ok=True)
            env["WANDB_DIR"] = str(Path(self.dir).absolute())
        self._set_env(env)
        self._finish_active()
        super().before_update(t, entity)

    def log(self, store: RunStore, t: int, scalars: dict[str, float]) -> None:
        wandb = importlib.import_module("wandb")
        self._finish_active()
        if self.dir:
            Path(self.dir).mkdir(parents=True, exist_ok=True)
        run = wandb.init(
            project=self.project,
            name=self.cfg.name,
            group=self._group(),
            job_type="generations",
            id=self.run_key(),
            resume="allow",
            dir=self.dir,
            config=self.cfg.model_dump(mode="json"),
        )
        run.define_metric("generation")
        run.define_metric("*", step_metric="generation")
        run.log({**scalars, "generation": t})
        run.finish()

    def close(self) -> None:
        if self._env:  # it ran: finish what the last update left open
            self._finish_active()
        super().close()


class MlflowTracker(Tracker):
    """MLflow: a parent run `<run name>` (tag crossgen_run_key: a resumed run continues it)
    with the generation numbers (step = generation) and a nested run per update."""

    backend = "mlflow"

    def __init__(self, cfg: RunConfig, out: Path):
        super().__init__(cfg, out)
        self.uri = _tracking_uri(cfg.tracking.dir) if cfg.tracking.dir else None
        self._parent: Any = None

    def _start(self) -> Any:
        """mlflow, with this run's parent run active (started, found again, or reactivated)."""
        mlflow = importlib.import_module("mlflow")
        if self._parent is None:
            env = {"MLFLOW_EXPERIMENT_NAME": self.project, "MLFLOW_NESTED_RUN": "true"}
            if self.uri:
                if self.uri.startswith("sqlite:///"):
                    Path(self.uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
                env["MLFLOW_TRACKING_URI"] = self.uri
                mlflow.set_tracking_uri(self.uri)
            self._set_env(env)
            mlflow.set_experiment(self.project)
            key = self.run_key()
            found = mlflow.search_runs(
                experiment_names=[self.project],
                filter_string=f"tags.crossgen_run_key = '{key}'",
                output_format="list",
            )
            if found:
                self._parent = found[0].info.run_id
            else:
                tags = {"crossgen_run_key": key, "crossgen_run_dir": str(self.out.resolve())}
                self._parent = mlflow.start_run(run_name=self.cfg.name, tags=tags).info.run_id
                mlflow.log_dict(self.cfg.model_dump(mode="json"), "config.json")
        active = mlflow.active_run()
        if active is None or active.info.run_id != self._parent:
            # transformers' MLflowCallback ends the active run when it is garbage collected,
            # after its own run has ended: that is the parent, so it is made active again
            while mlflow.active_run() is not None:
                mlflow.end_run()
            mlflow.start_run(run_id=self._parent)
        return mlflow

    def before_update(self, t: int, entity: str) -> None:
        self._start()  # the update's run is nested in the active parent
        super().before_update(t, entity)

    def log(self, store: RunStore, t: int, scalars: dict[str, float]) -> None:
        mlflow = self._start()
        mlflow.log_metrics({_mlflow_key(k): v for k, v in scalars.items()}, step=t)

    def close(self) -> None:
        if self._parent is not None:
            mlflow = self._start()
            mlflow.end_run()
            self._parent = None
        super().close()


def _tracking_uri(where: str) -> str:
    """A server or store URI as given; a folder as an SQLite store in it (`<folder>/mlflow.db`:
    MLflow 3 refuses new file stores)."""
    if ":" in where.split("/")[0] or where == "databricks":  # a URI: http://, file:, sqlite:///, databricks
        return where
    return "sqlite:///" + str(Path(where).absolute() / "mlflow.db")


def _mlflow_key(tag: str) -> str:
    """MLflow metric names allow letters, digits, _ - . space : /; anything else becomes _."""
    return re.sub(r"[^0-9A-Za-z_\-. :/]", "_", tag)


class _Announcing(Progress):
    """Every method of `inner`, with `before_update(t, entity)` called before each update."""

    def __init__(self, inner: Progress, before_update: Callable[[int, str], None]):
        for name in dir(Progress):
            if not name.startswith("_") and name != "train_start" and callable(getattr(Progress, name)):
                setattr(self, name, getattr(inner, name))
        self._inner = inner
        self._before_update = before_update

    def train_start(self, t: int, entity: str, steps: int) -> None:
        self._before_update(t, entity)
        self._inner.train_start(t, entity, steps)
