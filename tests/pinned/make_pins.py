"""Write the pinned results that tests/test_pinned.py compares against.

Run from the repository root with the code whose numbers are to be pinned:
    .venv/bin/python tests/pinned/make_pins.py              # new configs and numbers
    .venv/bin/python tests/pinned/make_pins.py --rerun cpu  # the stored config's numbers anew
It runs a shrunk CPU preset (two generations, alpha = 0.5, tiny GPT-2) and a shrunk linear
preset, and stores their tidy tables as JSON. Regenerate only on purpose: a change of these
numbers is a change of crossgen's results, and the commit should say why.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import pandas as pd

HERE = Path(__file__).parent

CPU = {  # dotted overrides of the cpu preset
    "generations": 2,
    "model.scratch.n_layer": 1,
    "model.scratch.n_embd": 32,
    "model.scratch.n_head": 2,
    "model.scratch.vocab_size": 300,
    "initial_training.max_steps": 30,
    "training.max_steps": 6,
    "mixing.n": 96,
    "generation.num_prompts": 24,
    "generation.max_new_tokens": 12,
    "evaluation.test_size": 24,
    "evaluation.embedding_prompts": 6,
    "evaluation.embedding_max_new_tokens": 8,
    "entities.0.task.train_size": 120,
    "entities.1.task.train_size": 120,
    "public.train_size": 120,
    "resources.cpus": 1,
}
LINEAR = {"generations": 4, "seed": 3}


def resolved(preset: str, overrides: dict) -> dict:
    """The fully resolved config (stored with the pins, so later preset edits do not move them)."""
    from crossgen.config import load_config
    from crossgen.presets import resolve_config

    return load_config(resolve_config(preset), overrides).model_dump(mode="json")


def run(config: dict, out: Path) -> dict:
    from crossgen.config import parse_config
    from crossgen.experiment import run_experiment

    run_experiment(parse_config(config), out)
    tables = {}
    for name in ("losses", "similarity"):
        path = out / f"{name}.csv"
        if path.is_file():
            tables[name] = pd.read_csv(path).to_dict(orient="list")
    return tables


def stored_config(pins: dict, name: str) -> dict:
    """A pinned run's stored config as it is run: resources.threads = 1 as when the pins were
    made (thread count can change float summation order), and whole pools."""
    config = json.loads(json.dumps(pins["configs"][name]))
    config.setdefault("resources", {})["threads"] = 1
    config["generation"]["lean"] = False  # the pins complete whole pools, as the first release did
    return config


def main() -> None:
    parser = argparse.ArgumentParser(description="write tests/pinned/pinned_runs.json")
    parser.add_argument(
        "--rerun",
        nargs="+",
        choices=["cpu", "linear"],
        help="re-run these pins from their stored configs (a deliberate change of the results, the data say)",
    )
    args = parser.parse_args()
    target = HERE / "pinned_runs.json"
    with tempfile.TemporaryDirectory() as tmp:
        if args.rerun:
            pins = json.loads(target.read_text())
            for name in args.rerun:
                pins[name] = run(stored_config(pins, name), Path(tmp) / name)
        else:
            configs = {"cpu": resolved("cpu", CPU), "linear": resolved("linear", LINEAR)}
            pins = {"configs": configs, **{name: run(config, Path(tmp) / name) for name, config in configs.items()}}
    target.write_text(json.dumps(pins, indent=1) + "\n")
    print(target, file=sys.stderr)


if __name__ == "__main__":
    main()
