"""Parameter sweeps: a base run config, axes to vary, seeds per cell; executed locally, in a
process pool or on Ray, resumable, aggregated into one tidy table and a report.

    sweep = load_sweep("grid.yaml")           # validates every cell x seed config first
    result = run_sweep(sweep, Path("out"), executor="process")
"""

from crossgen.sweep.config import SweepConfig
from crossgen.sweep.grid import Cell, RunSpec, Sweep, build_sweep, load_sweep
from crossgen.sweep.runner import SweepResult, run_sweep

__all__ = ["Cell", "RunSpec", "Sweep", "SweepConfig", "SweepResult", "build_sweep", "load_sweep", "run_sweep"]
