"""Shared test pieces: the smallest linear-backend run config (runs in well under a second),
and the `crossgen` command run in a subprocess or in this process (a killed run needs its own
process; the uninterrupted run it is compared with does not)."""

import copy
import os
import subprocess
import sys
from typing import Optional

OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}  # a hub name fails at once, not after retries


def crossgen(*args: str, env=None) -> subprocess.CompletedProcess:
    """`python -m crossgen ARGS` in a subprocess (offline, `env` added), its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "crossgen", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **OFFLINE, **(env or {})},
    )


def crossgen_here(*args: str) -> int:
    """`crossgen ARGS` in this process, its exit code: for runs that need no fresh process (an
    uninterrupted reference), without a second start-up (torch and transformers stay imported)."""
    from crossgen.cli import main

    return main(list(args))


def run_cli(capsys, *args: str) -> tuple:
    """The CLI in this process: (exit code, stdout, stderr)."""
    code = crossgen_here(*args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def tiny_linear(K: int = 2, **changes) -> dict:
    """A K-entity linear-backend run config as a plain mapping, with top-level `changes`."""
    data = {
        "name": "tiny",
        "seed": 0,
        "generations": 3,
        "alpha": 0.5,
        "beta": 0.5,
        "entities": [{"name": f"e{k}", "task": {"name": f"p{k}", "source": "offline"}} for k in range(K)],
        "public": {"name": "pub", "source": "offline"},
        "mixing": {"paradigm": "weighted-loss", "n": 1},
        "model": {"backend": "linear", "linear": {"d": 4, "rank": 2, "n_private": 12, "n_public": 6}},
        "generation": {"num_prompts": 1000},
        "evaluation": {"embedding_prompts": 0},
    }
    data.update(copy.deepcopy(changes))
    return data


def environment_variable(name: str) -> Optional[str]:
    """This process's value of `name` (run in a worker to see its environment)."""
    return os.environ.get(name)


def loaded_modules() -> set[str]:
    """The modules imported in this process (run in a worker to see what it has loaded)."""
    return set(sys.modules)
