import os

# No network here or in CI: without these a hub name retries for ~45 s before failing.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
# Throwaway run directories: no flush to the disk after each write (crossgen.io.durable); a
# third of a tiny linear run's time. test_io checks both settings.
os.environ.setdefault("CROSSGEN_FSYNC", "0")

# pytest-xdist (dev.sh: --dist loadfile --no-loadscope-reorder) hands whole files to its two
# workers in collection order: the slowest files first, so that the many short ones fill in
# behind them and neither worker is left alone with a long file at the end (longest first).
# The order changes nothing but the suite's wall time; the list is from `--durations=0`.
SLOWEST_FILES = (
    "test_executors.py",
    "test_workflow_hf.py",
    "test_workflow_linear.py",
    "test_demo.py",
    "test_sweep_resume.py",
    "test_sweep_generation0.py",
    "test_retention.py",
    "test_fresh_real.py",
    "test_lora.py",
    "test_heterogeneous.py",
    "test_io.py",
    "test_sweep_ray.py",
    "test_report.py",
)


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(SLOWEST_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: within a file, as written
