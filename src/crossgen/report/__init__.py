"""The run report: the paper's tables, figures and claims, rebuilt from saved run directories.

`write_run_report(runs, out_path, theory_dir=None)` writes one self-contained HTML file
(see report.html) from the files of finished or running runs; nothing is retrained or
re-embedded here (the embeddings come from crossgen.metrics.evaluate_generation).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Optional

from crossgen.report.runs import RunData, load_runs


def write_run_report(runs: Sequence[Path], out_path: Path, theory_dir: Optional[Path] = None) -> Path:
    """Write the HTML report of `runs` (run directories) to `out_path` atomically; return out_path."""
    from crossgen.errors import InputError
    from crossgen.io import write_text
    from crossgen.report.html import render_report

    if not runs:
        raise InputError("RUN_DIR", "none", "one or more crossgen run directories (with manifest.json)")
    data = load_runs([Path(r) for r in runs])
    text = render_report(data, Path(theory_dir) if theory_dir is not None else None)
    out_path = Path(out_path)
    write_text(out_path, text)
    return out_path


__all__ = ["RunData", "load_runs", "write_run_report"]
