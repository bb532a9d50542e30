"""CLI of the experiments: run a config, and the one-command demo."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Optional

import typer

from crossgen.cli.common import parse_overrides, stderr, stdout
from crossgen.errors import InputError


def run(
    config: str = typer.Argument(..., help="run config YAML, or a preset name (see configs/)"),
    out_dir: Path = typer.Option(..., "--out", help="run directory to create"),
    resume: bool = typer.Option(
        False, "--resume", help="continue the run in --out from its first incomplete generation"
    ),
    overrides: Optional[list[str]] = typer.Option(
        None, "--set", help="override a setting: key.path=value (YAML value)"
    ),
    executor: str = typer.Option(
        "sequential",
        "--executor",
        help="where the K entities of a generation run: sequential, process (one worker per entity on this "
        "machine) or ray (tasks asking for resources.cpus / resources.gpus each)",
    ),
    ray_address: Optional[str] = typer.Option(
        None, "--ray-address", help="Ray cluster to join with --executor ray (default: RAY_ADDRESS, else local)"
    ),
    report: bool = typer.Option(
        True, "--report/--no-report", help="write DIR/report.html at the end (`crossgen report` can write it later)"
    ),
) -> None:
    """Run the interactive training workflow of one config into a run directory."""
    from crossgen.config import load_config
    from crossgen.experiment import run_experiment
    from crossgen.presets import resolve_config
    from crossgen.workflow.progress import RichProgress

    cfg = load_config(resolve_config(config), parse_overrides(overrides))
    started = time.perf_counter()
    _check_executor(executor, ray_address)
    store = run_experiment(
        cfg,
        out_dir,
        resume=resume,
        progress=RichProgress(cfg.name, console=stderr, note=threads_note(cfg, executor)),
        executor=executor,
        ray_address=ray_address,
    )
    if report:
        from crossgen.report import write_run_report

        write_run_report([store.root], store.root / "report.html")
    stderr.print(f"run finished in {time.perf_counter() - started:.1f} s")
    stdout.print(str(store.root))


def demo(
    out_dir: Path = typer.Option(Path("crossgen-demo"), "--out", help="folder for the runs, figures and report"),
    preset: str = typer.Option("cpu", "--preset", help="run config or preset for the language-model part"),
    alphas: str = typer.Option("0,0.5,1", "--alphas", help="comma-separated alpha values"),
    replicates: Optional[int] = typer.Option(
        None,
        "--replicates",
        help="Monte Carlo replicates of the theory figures (default: crossgen.theory.figures.MC_REPLICATES = 4000)",
    ),
    overrides: Optional[list[str]] = typer.Option(None, "--set", help="override a setting of the preset: key=value"),
    executor: str = typer.Option(
        "process",
        "--executor",
        help="where the entities of a generation run: process (one worker per entity, the cores shared out), "
        "sequential or ray",
    ),
) -> None:
    """Theory figures + the preset at several alphas (sharing generation 0), then the report."""
    from crossgen.config import load_config, parse_config
    from crossgen.experiment import model_metrics_hook, run_sharing_generation0
    from crossgen.presets import resolve_config
    from crossgen.report import write_run_report
    from crossgen.theory.figures import MC_REPLICATES
    from crossgen.workflow.executors import make_executor
    from crossgen.workflow.progress import RichProgress, progress_bars

    alpha_values = _parse_alphas(alphas)
    base = load_config(resolve_config(preset), parse_overrides(overrides))
    _check_executor(executor, None)
    started = time.perf_counter()
    stderr.print("[bold]1/3[/] theory figures (Figures 2 and 4 of the paper), in the background")
    replicates = MC_REPLICATES if replicates is None else replicates
    theory = _start_theory_figures(out_dir / "theory", replicates)
    stderr.print(f"[bold]2/3[/] {base.K} entities, T={base.generations}, alpha in {alpha_values}")
    configs = [
        parse_config({**base.model_dump(), "alpha": alpha, "name": f"{base.name} alpha={alpha:g}"})
        for alpha in alpha_values
    ]
    labels = [f"alpha={alpha:g}" for alpha in alpha_values]
    bars = progress_bars(stderr)
    runner = make_executor(executor, base, None, model_metrics_hook)  # its workers serve all the runs
    try:
        with bars:
            stores = run_sharing_generation0(
                configs,
                [out_dir / f"alpha_{alpha:g}" for alpha in alpha_values],
                runner,
                lambda i: RichProgress(labels[i], stderr, threads_note(configs[i], executor) if i == 0 else None, bars),
            )
    finally:
        runner.close()
        if theory.is_alive() and sys.exc_info()[0] is not None:
            theory.terminate()  # the demo failed: its figures are not wanted
    runs = [store.root for store in stores]
    theory.join()
    if theory.exitcode != 0:
        raise RuntimeError(f"the theory figures failed (exit code {theory.exitcode}; their error is above)")
    stderr.print("[bold]3/3[/] report")
    report = write_run_report(runs, out_dir / "report.html", theory_dir=out_dir / "theory")
    stderr.print(f"demo finished in {time.perf_counter() - started:.0f} s")
    stdout.print(str(report))


def _start_theory_figures(folder: Path, replicates: int):
    """Figures 2 and 4 in a process of their own, started now and joined before the report.
    Their Monte Carlo is single-threaded numpy work (one BLAS thread) at the lowest priority
    (`_lowest_priority`): it takes what the language models leave of the cores (while one
    entity of generation 0 finishes training, say) instead of slowing them down."""
    import multiprocessing

    process = multiprocessing.get_context("spawn").Process(
        target=_theory_figures, args=(folder, replicates), name="crossgen-theory-figures"
    )
    process.start()
    return process


def _theory_figures(folder: Path, replicates: int) -> None:
    _lowest_priority()  # before its imports too

    from threadpoolctl import threadpool_limits

    from crossgen.theory.figures import figure2, figure4

    with threadpool_limits(1):
        figure2(folder, replicates=replicates)
        figure4(folder, replicates=replicates)


def _lowest_priority() -> None:
    """This process runs only on a core nothing else wants (Linux's SCHED_IDLE: the start-up,
    the end of generation 0 where one entity finishes first, the gaps between tasks), so its
    CPU time is not taken from the language models; elsewhere nice 19."""
    import os

    if hasattr(os, "sched_setscheduler") and hasattr(os, "SCHED_IDLE"):
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
            return
        except OSError:
            pass
    if hasattr(os, "nice"):  # POSIX
        os.nice(19)


def threads_note(cfg, executor: str = "sequential") -> Optional[str]:
    """How many CPU threads the run's models use (language-model backends only)."""
    from crossgen.backends.registry import get_backend

    if not get_backend(cfg.model.backend).TEXT:
        return None
    if executor == "process":
        import os

        threads = cfg.resources.threads or max(1, (os.cpu_count() or 1) // cfg.K)
        how = "resources.threads" if cfg.resources.threads else "the cores shared out; set resources.threads to change"
        return f"{cfg.name}: {cfg.K} worker processes, {threads} CPU threads each ({how})"
    if executor == "ray":
        return f"{cfg.name}: Ray tasks of {cfg.resources.cpus:g} CPUs and {cfg.resources.gpus:g} GPUs per entity"
    import torch

    threads = cfg.resources.threads or torch.get_num_threads()
    how = "resources.threads" if cfg.resources.threads else "torch's default; set resources.threads to change"
    return f"{cfg.name}: {threads} CPU threads ({how})"


def _check_executor(executor: str, ray_address: Optional[str]) -> None:
    from crossgen.workflow.executors import EXECUTORS

    if executor not in EXECUTORS:
        raise InputError("--executor", executor, "one of " + ", ".join(EXECUTORS))
    if ray_address and executor != "ray":
        raise InputError("--ray-address", ray_address, "only with --executor ray")


def _parse_alphas(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InputError("--alphas", text, "comma-separated numbers in [0, 1]") from None
    if not values or any(not 0 <= v <= 1 for v in values):
        raise InputError("--alphas", text, "comma-separated numbers in [0, 1]")
    return values
