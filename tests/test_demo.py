"""The README's main command, shrunk: theory figures, runs at two alphas sharing
generation 0, and the report, whose path is the one line on standard output."""

import json
import os
import subprocess
import sys

import pytest

from helpers import run_cli

pytest.importorskip("transformers")

SMALL = [
    "generations=1",
    "model.scratch.n_layer=1",
    "model.scratch.n_embd=32",
    "model.scratch.n_head=2",
    "model.scratch.vocab_size=300",
    "initial_training.max_steps=10",
    "training.max_steps=3",
    "mixing.n=64",
    "generation.num_prompts=16",
    "generation.max_new_tokens=8",
    "evaluation.test_size=16",
    "evaluation.embedding_prompts=4",
    "evaluation.embedding_max_new_tokens=8",
    "entities.0.task.train_size=100",
    "entities.1.task.train_size=100",
    "public.train_size=100",
]


def test_demo_end_to_end(tmp_path, capsys):
    args = [
        sys.executable,
        "-m",
        "crossgen",
        "demo",
        "--out",
        str(tmp_path / "demo"),
        "--alphas",
        "0,1",
        "--replicates",
        "20",
    ]
    for pair in [*SMALL, "resources.threads=1"]:  # bit-identical to a run on one thread (below)
        args += ["--set", pair]
    proc = subprocess.run(args, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = tmp_path / "demo" / "report.html"
    assert proc.stdout.strip() == str(report)
    html = report.read_text()
    assert 'id="findings"' in html and "data:image/png;base64," in html
    for name in ("figure2.png", "figure2.csv", "figure4.png", "figure4.csv"):
        assert (tmp_path / "demo" / "theory" / name).is_file()
    a0, a1 = tmp_path / "demo" / "alpha_0", tmp_path / "demo" / "alpha_1"
    # generation 0 does not depend on alpha: the second run reuses the first one's
    for rel in ("gen_000/models/science/model.safetensors", "initial/model.safetensors"):
        assert (a0 / rel).read_bytes() == (a1 / rel).read_bytes()
    assert json.loads((a1 / "manifest.json").read_text())["status"] == "complete"
    # alpha = 1 ran side by side with alpha = 0 on the same two workers, its metrics taking turns
    # with alpha = 0's: the same files as the run alone, one entity after the other
    # (in this process: the same code as `crossgen run`, without a second start-up)
    code, _, err = run_cli(
        capsys,
        "run",
        "--no-report",
        "cpu",
        "--out",
        str(tmp_path / "alone"),
        *[arg for pair in [*SMALL, "alpha=1", "name=cpu alpha=1", "resources.threads=1"] for arg in ("--set", pair)],
    )
    assert code == 0, err[-3000:]
    for table in ("losses.csv", "similarity.csv", "metrics.csv", "gen_001/completions/science.jsonl"):
        assert (tmp_path / "alone" / table).read_text() == (a1 / table).read_text(), table


def test_demo_rejects_bad_alphas(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "crossgen", "demo", "--out", str(tmp_path / "d"), "--alphas", "0,2"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: invalid --alphas: 0,2 (allowed: comma-separated numbers in [0, 1])"
    assert not (tmp_path / "d").exists()


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="Linux's SCHED_IDLE")
def test_theory_figures_process_takes_only_idle_cores():
    """The demo's theory figures run under SCHED_IDLE (a core nothing else wants), checked in a
    child process (a policy cannot be raised back without privileges)."""
    code = (
        "import os; from crossgen.cli.experiments import _lowest_priority; _lowest_priority();"
        "print(os.sched_getscheduler(0) == os.SCHED_IDLE)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
