"""crossgen's results do not drift: a shrunk CPU run and a linear run reproduce the numbers
pinned in tests/pinned/pinned_runs.json (written by tests/pinned/make_pins.py with the code
of the first release; the CPU run's numbers re-run from the same config when the offline
stories became three sentences). A refactor that changes any of them changes crossgen's results."""

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

PINNED = Path(__file__).parent / "pinned"
sys.path.insert(0, str(PINNED))
import make_pins  # noqa: E402

PINS = json.loads((PINNED / "pinned_runs.json").read_text())


def _config(name: str) -> dict:
    return make_pins.stored_config(PINS, name)


def _compare(pinned: dict, out: Path) -> None:
    for name, columns in pinned.items():
        got = pd.read_csv(out / f"{name}.csv")
        want = pd.DataFrame(columns)
        # columns appended since the pins (losses' bits_per_byte) are not pinned; the pinned ones are
        assert list(got.columns)[: len(want.columns)] == list(want.columns)
        value = want.columns[-1]
        keys = list(want.columns[:-1])
        assert got[keys].astype(str).values.tolist() == want[keys].astype(str).values.tolist()
        # The same computation: only float summation order may differ, which on another CPU
        # (other SIMD kernels) moves a loss by up to ~1e-8 relative; 1e-6 is still far below
        # any change a different result would make (>= 1e-4).
        np.testing.assert_allclose(got[value].to_numpy(), want[value].to_numpy(), rtol=1e-6, atol=0)


def test_linear_run_reproduces_pinned_numbers(tmp_path):
    make_pins.run(_config("linear"), tmp_path / "linear")
    _compare(PINS["linear"], tmp_path / "linear")


def test_cpu_run_reproduces_pinned_numbers(tmp_path):
    pytest.importorskip("transformers")
    make_pins.run(_config("cpu"), tmp_path / "cpu")
    _compare(PINS["cpu"], tmp_path / "cpu")
