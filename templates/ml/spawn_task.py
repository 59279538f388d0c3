"""The spawn task contract for Python scripts (docs/agent.md), with no dependencies.

Parameters come from $SPAWN_PARAMS_FILE, checkpoints live in $SPAWN_CHECKPOINT_DIR (restored
before a retry, with SPAWN_RESUME=1), metrics are JSON lines appended to $SPAWN_METRICS_FILE
(the last value of each key is the task's result) and files in $SPAWN_OUTPUT_DIR are kept.
Outside spawn the same script runs with local defaults.
"""

import json
import os
import sys
from pathlib import Path


def smoke() -> bool:
    """`--smoke`: a tiny randomly initialised model and a few steps, with nothing downloaded."""
    return "--smoke" in sys.argv[1:]


def params(defaults: dict) -> dict:
    """The task's parameters over `defaults`; unknown names are an error, so typos fail loudly."""
    path = os.environ.get("SPAWN_PARAMS_FILE")
    given = json.loads(Path(path).read_text()) if path else {}
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        sys.exit(f"unknown parameter(s) {', '.join(unknown)}; this script takes {', '.join(sorted(defaults))}")
    return {**defaults, **given}


def rank() -> int:
    """This process's global rank: torchrun's RANK, else spawn's SPAWN_RANK."""
    return int(os.environ.get("RANK", os.environ.get("SPAWN_RANK", "0")))


def _dir(variable: str, fallback: str) -> Path:
    path = Path(os.environ.get(variable, fallback))
    path.mkdir(parents=True, exist_ok=True)
    return path


def output_dir() -> Path:
    return _dir("SPAWN_OUTPUT_DIR", "output")


def checkpoint_dir() -> Path:
    return _dir("SPAWN_CHECKPOINT_DIR", "checkpoints")


def metric(**values) -> None:
    """Appends one JSON line of metrics (rank 0 only) and echoes it to the log."""
    if rank() != 0:
        return
    line = json.dumps(values)
    print(line, flush=True)
    path = os.environ.get("SPAWN_METRICS_FILE")
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")


def save_checkpoint(state, name: str = "last.pt") -> None:
    """Writes atomically (temp file, then rename), so an interruption never leaves half a checkpoint."""
    import torch

    target = checkpoint_dir() / name
    tmp = target.with_suffix(target.suffix + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, target)


def load_checkpoint(name: str = "last.pt", map_location=None):
    """The last checkpoint, or None on a first attempt."""
    import torch

    path = checkpoint_dir() / name
    if not path.exists():
        return None
    print(f"resuming from {path} (SPAWN_RESUME={os.environ.get('SPAWN_RESUME', '0')})", flush=True)
    return torch.load(path, map_location=map_location, weights_only=False)


def device():
    import torch

    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")
