"""Executors agree: a small linear-backend sweep on a Ray cluster started inside the test
(num_cpus=2) and in a process pool gives exactly the aggregated table of the local one."""

import copy

import pytest

from crossgen.errors import InputError
from crossgen.sweep import build_sweep, run_sweep
from helpers import tiny_linear

ray = pytest.importorskip("ray")

BASE = tiny_linear(seed=3, generations=3)
SPEC = {"name": "exec", "base": BASE, "axes": {"alpha": [0.2, 0.8], "beta": [0.4, 0.9]}, "seeds": 2}


def spec():
    return build_sweep(copy.deepcopy(SPEC))


@pytest.fixture(scope="module")
def local_table(tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    result = run_sweep(spec(), out)
    assert result.done == 8 and not result.failed
    return (out / "aggregate.csv").read_text()


@pytest.fixture(scope="module")
def ray_cluster():
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_executor_gives_the_local_table(ray_cluster, local_table, tmp_path):
    for batch, out in ((None, tmp_path / "one"), (2, tmp_path / "batched")):
        result = run_sweep(spec(), out, executor="ray", batch=batch)
        assert (result.done, result.ran, result.failed) == (8, 8, [])
        assert (out / "aggregate.csv").read_text() == local_table
        assert ray.is_initialized()  # the test's Ray is reused, not shut down
    again = run_sweep(spec(), tmp_path / "one", executor="ray")
    assert again.ran == 0  # resumable on Ray too


def test_ray_refuses_cells_that_need_more_than_a_local_cluster_has(ray_cluster, tmp_path, monkeypatch):
    from crossgen.sweep import executors

    data = copy.deepcopy(SPEC)
    data["base"]["resources"] = {"gpus": 1}
    monkeypatch.setattr(executors.RayExecutor, "__init__", _fake_local_init)
    with pytest.raises(InputError, match=r"resources\.gpus"):
        run_sweep(build_sweep(data), tmp_path / "gpu", executor="ray")
    assert not (tmp_path / "gpu").exists()


def _fake_local_init(self, address=None, workers=None):
    self.ray, self.owned, self.local = ray, False, True
    self.resources = ray.cluster_resources()
    self.parallelism = 2


def test_process_pool_gives_the_local_table(local_table, tmp_path):
    result = run_sweep(spec(), tmp_path, executor="process", workers=2)
    assert (result.done, result.failed) == (8, [])
    assert (tmp_path / "aggregate.csv").read_text() == local_table
