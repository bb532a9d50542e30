"""The task and backend registries: the documented worked examples (a new task, a new backend,
each one file) run end to end, entry points, lazy imports, errors, and answer checking."""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
import time
from collections import Counter
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Optional

import pandas as pd
import pytest

from crossgen.backends import registry as backend_registry
from crossgen.backends.base import Backend, TrainStats
from crossgen.backends.registry import backend_names, get_backend, register_backend
from crossgen.config import TaskConfig, parse_config
from crossgen.data import Example, real_source
from crossgen.errors import InputError
from crossgen.io import atomic_path
from crossgen.tasks import GeneratedTask, Task, get_task, load_experiment_data, load_task, register_task, task_names
from crossgen.tasks import registry as task_registry
from crossgen.tasks.answers import chosen_option, final_number, starts_with_answer

# --- the worked example of docs "How to add a task" (src/crossgen/tasks/toy_reverse.py) ------

WORDS = ("red", "green", "blue", "gold", "gray", "pink")


class ToyReverse(GeneratedTask):
    """Prompt "Reverse: w1 w2 w3\\nAnswer:", answer " w3 w2 w1" (a generated task)."""

    def generate(self, seed: int, train_size: Optional[int], test_size: Optional[int]):
        rng = random.Random(f"{self.name}:{seed}")

        def example() -> Example:
            words = rng.choices(WORDS, k=rng.randint(2, 4))
            answer = " ".join(reversed(words))
            return Example(
                f"Reverse: {' '.join(words)}\nAnswer:", f" {answer}", real_source(self.name), {"gold": answer}
            )

        train = [example() for _ in range(train_size or 500)]
        test = [example() for _ in range(test_size or 50)]
        return train, test


# --- the worked example of docs "How to add a backend" (src/crossgen/backends/unigram.py) ----


class UnigramModel:
    """Word counts of every answer seen; writes words drawn from them."""

    def __init__(self, counts: dict):
        self.counts = Counter(counts)

    def train(self, examples, cfg, seed, weights=None, progress=None) -> TrainStats:
        start = time.perf_counter()
        for i, e in enumerate(examples):
            for word in e.answer.split():
                self.counts[word] += 1.0 if weights is None else weights[i]
        if progress:
            progress(1, 1)
        return TrainStats(
            steps=1, tokens=len(examples), seconds=time.perf_counter() - start, final_loss=self.score(examples)
        )

    def generate(self, prompts, cfg, seed, max_new_tokens=None) -> list[str]:
        rng, n = random.Random(seed), max_new_tokens or cfg.max_new_tokens
        words, weights = zip(*self.counts.items()) if self.counts else (("",), (1,))
        return [" " + " ".join(rng.choices(words, weights, k=min(n, 4))) for _ in prompts]

    def score(self, examples, batch_size=0) -> float:
        """Mean -log p(word) over answer words, add-one smoothed (nats per word)."""
        total, vocab = sum(self.counts.values()), len(self.counts) + 1
        losses = [-math.log((self.counts[w] + 1) / (total + vocab)) for e in examples for w in e.answer.split()]
        return sum(losses) / max(1, len(losses))

    def save(self, directory: Path) -> None:
        with atomic_path(Path(directory)) as tmp:
            tmp.mkdir(parents=True)
            (tmp / "counts.json").write_text(json.dumps(self.counts))


class UnigramBackend:
    TEXT = True  # completions are text: embedding metrics apply
    LOSS_LABEL = "nats per word"

    @classmethod
    def from_config(cls, cfg):
        return load_experiment_data(cfg), cls()  # the configured tasks, through the task registry

    def initial_model(self, real_texts, seed) -> UnigramModel:
        return UnigramModel({})

    def load(self, directory: Path) -> UnigramModel:
        return UnigramModel(json.loads((Path(directory) / "counts.json").read_text()))


# --- fixtures -------------------------------------------------------------------------------


def isolate_registries(monkeypatch) -> None:
    """Registrations made from here on vanish after the test. Every built-in is imported
    (registered) first: a module imported inside would register into the throw-away copy."""
    task_names(), backend_names()
    monkeypatch.setattr(task_registry, "_TASKS", dict(task_registry._TASKS))
    monkeypatch.setattr(backend_registry, "_BACKENDS", dict(backend_registry._BACKENDS))


@pytest.fixture
def registered(monkeypatch):
    """The two examples registered for one test only."""
    isolate_registries(monkeypatch)
    register_task("toy_reverse")(ToyReverse)
    register_backend("unigram")(UnigramBackend)


def toy_run(**changes) -> dict:
    data = {
        "name": "toy",
        "seed": 0,
        "generations": 2,
        "alpha": 0.5,
        "beta": 0.5,
        "entities": [
            {"name": "rev", "task": {"name": "toy_reverse", "train_size": 40, "test_size": 8}},
            {"name": "sci", "task": {"name": "offline_science", "train_size": 40, "test_size": 8}},
        ],
        "public": {"name": "offline_stories", "train_size": 40, "test_size": 8},
        "mixing": {"paradigm": "accumulate-subsample", "n": 30},
        "model": {"backend": "unigram"},
        "generation": {"num_prompts": 10, "max_new_tokens": 4},
        "evaluation": {"embedding_prompts": 0},
    }
    data.update(changes)
    return data


# --- the worked examples end to end -----------------------------------------------------------


def test_toy_task_and_backend_run_end_to_end(registered, tmp_path):
    from crossgen.experiment import run_experiment

    assert "toy_reverse" in task_names(generated=True) and "unigram" in backend_names()
    task = load_task(TaskConfig(name="toy_reverse", source="offline", train_size=5, test_size=3), seed=1)
    assert (task.name, len(task.train), len(task.test)) == ("toy_reverse", 5, 3)
    e = task.test[0]
    assert get_task("toy_reverse").verify(e.answer + ".\nReverse: more", e)
    assert not get_task("toy_reverse").verify(" purple", e)
    assert not get_task("toy_reverse").verify(" " + " ".join(e.answer.split()[:-1]), e)  # a word short
    assert isinstance(UnigramBackend(), Backend)

    store = run_experiment(parse_config(toy_run()), tmp_path / "run")
    losses = pd.read_csv(store.root / "losses.csv")
    assert len(losses) == 3 * 2 * 3 and losses.loss.notna().all()  # generations x models x tasks
    pool = [json.loads(line) for line in (tmp_path / "run" / "gen_001" / "pool" / "rev.jsonl").read_text().splitlines()]
    # lean pools: only the entries some update drew were completed, each with its index in the pool of 10
    manifest = json.loads((store.root / "manifest.json").read_text())
    assert manifest["generations"]["1"]["pools"]["rev"] == {"generated": len(pool), "pool": 10}
    assert 0 < len(pool) <= 10 and pool[0]["source"] == "synthetic:rev:0"
    assert all(0 <= row["index"] < 10 for row in pool)
    # the same config again reproduces every number
    again = run_experiment(parse_config(toy_run()), tmp_path / "again")
    pd.testing.assert_frame_equal(pd.read_csv(again.root / "losses.csv"), losses)


def test_capabilities_reach_the_report_code(registered):
    assert get_backend("unigram").LOSS_LABEL == "nats per word"
    assert (get_backend("hf").TEXT, get_backend("linear").TEXT) == (True, False)
    assert get_backend("linear").LOSS_LABEL == "MSE"


# --- errors -------------------------------------------------------------------------------------


def test_unknown_backend_is_refused_before_anything_is_written(tmp_path):
    from crossgen.experiment import run_experiment

    cfg = parse_config(toy_run(model={"backend": "no_such_backend"}))  # any name passes the config
    with pytest.raises(InputError) as err:
        run_experiment(cfg, tmp_path / "run")
    assert str(err.value) == "invalid model.backend: no_such_backend (allowed: one of hf, linear)"
    assert not (tmp_path / "run").exists()
    for name in ("base", "registry", "device", "a.b", ""):  # helper modules and non-names are no backends
        with pytest.raises(InputError, match=r"allowed: one of hf, linear\)$"):
            get_backend(name)


def test_unknown_task_name_in_a_run_names_the_field(registered, tmp_path):
    from crossgen.experiment import run_experiment

    data = toy_run()
    data["entities"][1]["task"]["name"] = "squad"
    with pytest.raises(InputError, match=r"^invalid entities.1.task.name: squad \(allowed: one of arc_challenge, "):
        run_experiment(parse_config(data), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_registration_mistakes_are_errors(registered):
    with pytest.raises(ValueError, match="already registered by"):

        @register_task("toy_reverse")
        class Other(GeneratedTask):
            pass

    with pytest.raises(ValueError, match="register a subclass per name"):
        register_task("toy_reverse_2")(ToyReverse)
    with pytest.raises(TypeError, match="decorates a Task subclass"):
        register_task("not_a_task")(dict)
    with pytest.raises(ValueError):
        register_task(" spaced ")
    with pytest.raises(TypeError, match="lacks TEXT, LOSS_LABEL, from_config"):
        register_backend("half")(UnigramModel)
    with pytest.raises(ValueError, match="a Python identifier"):
        register_backend("my-backend")
    register_task("toy_reverse")(ToyReverse)  # the same class again (a module reload) is fine


# --- entry points ---------------------------------------------------------------------------------

PLUGIN = """
from crossgen.tasks import GeneratedTask
from crossgen.data import Example


class PluginTask(GeneratedTask):
    def generate(self, seed, train_size, test_size):
        return [Example("p", " a")], [Example("q", " b")]


class PluginBackend:
    TEXT = False
    LOSS_LABEL = "none"

    @classmethod
    def from_config(cls, cfg):
        raise NotImplementedError

    def initial_model(self, real_texts, seed):
        raise NotImplementedError

    def load(self, directory):
        raise NotImplementedError
"""


def test_entry_points_add_tasks_and_backends(tmp_path, monkeypatch):
    (tmp_path / "crossgen_test_plugin.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    isolate_registries(monkeypatch)
    points = {
        "crossgen.tasks": [
            EntryPoint("plugin_task", "crossgen_test_plugin:PluginTask", "crossgen.tasks"),
            EntryPoint("sciq", "crossgen_test_plugin:PluginTask", "crossgen.tasks"),
        ],
        "crossgen.backends": [EntryPoint("plugin_backend", "crossgen_test_plugin:PluginBackend", "crossgen.backends")],
    }
    fake = lambda group: points.get(group, [])
    monkeypatch.setattr(task_registry, "entry_points", fake)
    monkeypatch.setattr(backend_registry, "entry_points", fake)
    task = load_task(TaskConfig(name="plugin_task", source="offline"), seed=0)
    assert [e.prompt for e in task.train] == ["p"] and task.name == "plugin_task"
    assert type(get_task("sciq")).__module__ == "crossgen.tasks.sciq"  # a built-in name is not shadowed
    assert get_backend("plugin_backend").LOSS_LABEL == "none"
    assert backend_names() == ["hf", "linear", "plugin_backend"]
    # an entry point that registers nothing is a loud error, not a silently missing task
    points["crossgen.tasks"].append(EntryPoint("ghost", "crossgen_test_plugin", "crossgen.tasks"))
    with pytest.raises(RuntimeError, match="registers no task 'ghost'"):
        get_task("ghost")


# --- lazy imports -------------------------------------------------------------------------------


def test_linear_runs_and_capabilities_never_import_torch():
    code = (
        "import sys, yaml\n"
        "from crossgen.config import parse_config\n"
        "from crossgen.backends.registry import get_backend\nfrom crossgen.workflow.run import build\n"
        "from importlib.resources import files\n"
        "cfg = parse_config(yaml.safe_load((files('crossgen') / 'configs' / 'linear.yaml').read_text()))\n"
        "data, backend = build(cfg)\n"
        "assert get_backend('hf').TEXT and len(data.private) == 4\n"
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"


# --- answers ------------------------------------------------------------------------------------


def test_answer_checks():
    choices = ("carbon", "carbon dioxide", "oxygen")
    assert chosen_option(" carbon dioxide, which plants use", choices) == 1  # the longest match wins
    assert chosen_option(" Carbon.", choices) == 0
    assert chosen_option(" (C) oxygen", choices) == 2 and chosen_option(" C", choices) == 2
    assert chosen_option(" B. carbon dioxide", choices) == 1
    assert chosen_option(" carbonate", choices) is None  # whole words only
    assert chosen_option(" D", choices) is None and chosen_option("", choices) is None
    assert final_number("so 48+24 = 72.\n#### 72") == "72"
    assert final_number("#### $1,000.50 dollars") == "1000.5" and final_number(" #### 10.0") == "10"
    assert final_number("#### -3") == "-3" and final_number("no marker 72") is None
    assert starts_with_answer(" Sugar.\nQuestion: next", "sugar") and not starts_with_answer(" sugary", "sugar")


def test_dataset_tasks_verify_completions(tmp_path):
    rows = [
        {
            "question": "Which gas?",
            "correct_answer": "carbon dioxide",
            "distractor1": "oxygen",
            "distractor2": "helium",
            "distractor3": "carbon",
        }
    ] * 2
    (tmp_path / "train.json").write_text(json.dumps(rows))
    (tmp_path / "test.json").write_text(json.dumps(rows))
    sciq = get_task("sciq")
    e = load_task(TaskConfig(name="sciq", source="local", path=tmp_path), seed=0).test[0]
    assert sciq.verify(" carbon dioxide", e) and not sciq.verify(" carbon", e) and not sciq.verify(" helium", e)
    gsm = get_task("gsm8k")
    e = Example("Question: q\nAnswer:", " 2 + 2 = 4\n#### 4", "real:gsm8k", {"gold": "4"})
    assert gsm.verify(" 4 = 2 + 2 #### 4", e) and not gsm.verify(" #### 5", e) and not gsm.verify(" 4", e)
    arc = get_task("arc_easy")
    e = Example("Q", " wet palms", "real:arc_easy", {"choices": ("dry palms", "wet palms"), "gold": 1})
    assert arc.verify(" (B)", e) and arc.verify(" wet palms", e) and not arc.verify(" (A) dry palms", e)
    with pytest.raises(NotImplementedError):
        Task().verify(" x", Example("p", " x"))
