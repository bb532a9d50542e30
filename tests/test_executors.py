"""Entities in parallel: the process and Ray executors write the very files of the sequential
one (same threads, same seeds), a worker that dies fails only its entity's task with a
message naming it, and a run killed in a worker or in the driver resumes to the same files."""

from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import pytest
import yaml

pytest.importorskip("transformers")

from helpers import crossgen, crossgen_here, environment_variable, loaded_modules, run_cli, tiny_linear
from test_workflow_hf import TINY

# What must be bit-identical: the tables, a pool, and the last generation's weights.
FILES = [
    "losses.csv",
    "metrics.csv",
    "gen_002/pool/science.jsonl",
    "gen_002/models/arithmetic/model.safetensors",
]


@pytest.fixture(scope="module")
def sequential(tmp_path_factory):
    """An uninterrupted sequential run of TINY (one torch thread): (config, run directory)."""
    root = tmp_path_factory.mktemp("executors")
    config = root / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    assert crossgen_here("run", "--no-report", str(config), "--out", str(root / "sequential")) == 0
    return config, root / "sequential"


def assert_same_files(got, want):
    for name in FILES:
        assert (got / name).read_bytes() == (want / name).read_bytes(), name


def test_process_executor_writes_the_sequential_files(tmp_path, sequential, capsys):
    config, reference = sequential
    code, _, err = run_cli(
        capsys, "run", "--no-report", str(config), "--out", str(tmp_path / "run"), "--executor", "process"
    )
    assert code == 0, err[-2000:]
    assert "2 worker processes, 1 CPU threads each" in err
    assert_same_files(tmp_path / "run", reference)


def test_process_workers_import_the_backend_before_their_first_task(monkeypatch):
    from crossgen.config import parse_config
    from crossgen.workflow.executors import make_executor

    for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"):
        monkeypatch.delenv(name, raising=False)  # not inherited: the worker sets glibc's malloc itself
    executor = make_executor("process", parse_config(TINY))
    try:  # a worker runs its tasks in order: the imports were its first
        loaded = [pool.submit(loaded_modules).result() for pool in executor.pools if pool is not None]
        malloc = [
            pool.submit(environment_variable, "MALLOC_MMAP_THRESHOLD_").result() for pool in executor.pools if pool
        ]
    finally:
        executor.close()
    assert len(loaded) == 2 and all({"torch", "transformers", "crossgen.backends.hf.train"} <= m for m in loaded)
    assert malloc == [str(64 << 20)] * 2  # crossgen.malloc.keep_freed_memory ran in each worker
    linear = make_executor("process", parse_config(tiny_linear()))
    assert linear.pools == [None, None]  # nothing to import: workers start with their first task
    linear.close()


def test_a_closed_process_executor_starts_no_worker():
    from crossgen.workflow.executors import ProcessExecutor

    executor = ProcessExecutor(workers=2, threads=1)
    executor.close()  # a run still going when another failed must not start new workers
    with pytest.raises(RuntimeError, match="closed"):
        executor.start(["json"])
    assert executor.pools == [None, None]


@pytest.fixture(scope="module")
def linear(tmp_path_factory):
    """An uninterrupted sequential run of a small linear-backend config: (config, run directory).
    The kill tests use it: the same executor code as the language models, at a tenth of the time."""
    root = tmp_path_factory.mktemp("linear")
    config = root / "linear.yaml"
    config.write_text(yaml.safe_dump(tiny_linear(generations=2, resources={"threads": 1})))
    assert crossgen_here("run", "--no-report", str(config), "--out", str(root / "sequential")) == 0
    return config, root / "sequential"


def assert_same_linear_files(got, want):
    names = ["losses.csv", "gen_002/pool/e0.jsonl", "gen_002/models/e1/model.safetensors"]
    for name in names:
        assert (got / name).read_bytes() == (want / name).read_bytes(), name


def test_a_worker_killed_fails_its_entity_and_the_run_resumes_to_the_same_files(tmp_path, linear):
    config, reference = linear
    out = str(tmp_path / "run")
    killed = crossgen(
        "run", str(config), "--out", out, "--executor", "process", env={"CROSSGEN_KILL_AT": "gen1.train.e1"}
    )
    assert killed.returncode == 1
    error = killed.stderr.strip().splitlines()[-1]
    assert error.startswith("error: generation 1, entity e1: update failed: BrokenProcessPool"), error
    assert (tmp_path / "run" / "gen_001" / "models" / "e0").is_dir()  # the other entity's worker lived on
    resumed = crossgen("run", "--no-report", str(config), "--out", out, "--executor", "process", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert_same_linear_files(tmp_path / "run", reference)


def test_the_driver_killed_between_phases_resumes_to_the_same_files(tmp_path, linear):
    config, reference = linear
    out = str(tmp_path / "run")
    killed = crossgen(
        "run", str(config), "--out", out, "--executor", "process", env={"CROSSGEN_KILL_AT": "gen1.losses"}
    )
    assert killed.returncode == -9
    resumed = crossgen("run", "--no-report", str(config), "--out", out, "--resume")  # and on another executor
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert_same_linear_files(tmp_path / "run", reference)


def test_ray_executor_writes_the_sequential_files(tmp_path, sequential):
    pytest.importorskip("ray")
    config, reference = sequential
    run = crossgen("run", "--no-report", str(config), "--out", str(tmp_path / "run"), "--executor", "ray")
    assert run.returncode == 0, run.stderr[-2000:]
    assert_same_files(tmp_path / "run", reference)


def test_metrics_overlapping_the_next_generation_and_pruning_give_the_sequential_run(tmp_path):
    """With a parallel executor the evaluate hook of generation t runs while generation t + 1
    trains; t is marked complete after it, and pruning keeps t + 1's models."""
    from crossgen.config import parse_config
    from crossgen.workflow.executors import ProcessExecutor
    from crossgen.workflow.run import run_workflow

    cfg = parse_config(tiny_linear(generations=3, checkpoints="needed", resources={"threads": 1}))
    seen = []

    def hook(store, t):  # a metric of generation t, from its files only
        seen.append((t, sorted(store.completed_generations())))
        mean = pd.read_csv(store.losses_path(t)).loss.mean()
        (store.gen_dir(t) / "mean_loss.txt").write_text(f"{mean:.12g}")

    run_workflow(cfg, tmp_path / "seq", evaluate_hook=hook)
    assert seen == [(t, list(range(t))) for t in range(4)]
    seen.clear()
    executor = ProcessExecutor(workers=2, threads=1)
    try:
        run_workflow(cfg, tmp_path / "par", evaluate_hook=hook, executor=executor)
    finally:
        executor.close()
    assert seen == [(t, list(range(t))) for t in range(4)]  # the same state as sequential hooks see
    for name in ["losses.csv", *(f"gen_00{t}/mean_loss.txt" for t in range(4))]:
        assert (tmp_path / "par" / name).read_bytes() == (tmp_path / "seq" / name).read_bytes(), name
    kept = sorted(p.parent.name for p in (tmp_path / "par").glob("gen_*/models"))
    assert kept == sorted(p.parent.name for p in (tmp_path / "seq").glob("gen_*/models")) == ["gen_000", "gen_003"]


def test_an_exception_in_a_task_names_its_entity_and_generation(tmp_path, monkeypatch):
    from crossgen.errors import EntityTaskError
    from crossgen.workflow.executors import EntityTask, ProcessExecutor

    class Workflow:  # what the executor reads of a workflow, with a task that cannot run
        names = ("science", "arithmetic")

    executor = ProcessExecutor(workers=2, threads=1)
    executor.pools = [ThreadPoolExecutor(1), ThreadPoolExecutor(1)]
    monkeypatch.setattr(executor, "_spec", lambda workflow: None)
    with pytest.raises(EntityTaskError, match=r"^generation 3, entity arithmetic: update failed: AttributeError"):
        executor.map(Workflow(), [EntityTask("update", 3, 1, True)])
    executor.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--executor", "threads"], "error: invalid --executor: threads (allowed: one of sequential, process, ray)"),
        (["--ray-address", "auto"], "error: invalid --ray-address: auto (allowed: only with --executor ray)"),
    ],
)
def test_bad_executor_options_are_refused_before_anything_is_written(tmp_path, args, message):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    proc = crossgen("run", str(config), "--out", str(tmp_path / "run"), *args)
    assert proc.returncode == 2 and proc.stderr.strip() == message
    assert not (tmp_path / "run").exists()
