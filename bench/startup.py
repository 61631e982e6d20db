"""One pair from a fresh process, installed as a user installs it (not a test).

    python bench/startup.py [--runs 15] [--precision int8] [--model DIR] [--against REV]

Installs this working tree with `pip install .` into a fresh virtual environment (and, with
--against, the git revision REV into another, with a cache of its own so that neither
prunes the other's builds), builds the model once in each, then runs
`squeezenli PREMISE HYPOTHESIS --json` --runs times per install, interleaved so the machine's
drift touches each alike, and prints the median and best wall time, the median CPU time (all
threads: a spinning helper thread shows there before it shows in wall time) and peak memory.
The development environment's editable install starts ~0.1 s slower than this.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import DEV_CACHE, PAIR, ROOT, ensure_model, measure_rss  # noqa: E402


def install(source: Path, folder: Path) -> Path:
    """A fresh virtual environment at folder with source pip-installed; its console script."""
    venv.create(folder, clear=True, with_pip=True)
    pip = [str(folder / "bin" / "python"), "-m", "pip", "install", "-q", str(source)]
    subprocess.run(pip, check=True)
    return folder / "bin" / "squeezenli"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--precision", default="int8")
    parser.add_argument("--model", help="model folder [default: full-size random checkpoint]")
    parser.add_argument("--against", help="a git revision to compare with")
    args = parser.parse_args()

    model = ensure_model(args.model)
    work = DEV_CACHE / "startup"
    work.mkdir(parents=True, exist_ok=True)
    sources = {"this tree": ROOT}
    if args.against:
        checkout = Path(tempfile.mkdtemp(prefix="squeezenli-startup-"))
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(checkout), args.against],
            check=True,
            capture_output=True,
        )
        sources[args.against] = checkout
    try:
        report(sources, model, work, args)
    finally:
        if args.against:
            worktree = ["git", "-C", str(ROOT), "worktree", "remove", "--force"]
            subprocess.run([*worktree, str(sources[args.against])], check=False)


def report(sources: dict[str, Path], model: Path, work: Path, args) -> None:
    """Install each source, build the model once in each, time interleaved starts, print."""
    commands = {}
    for index, (name, source) in enumerate(sources.items()):
        print(f"installing {name} into a fresh environment", file=sys.stderr)
        script = install(source, work / f"venv{index}")
        env = dict(os.environ, HF_HOME=str(work / f"hf{index}"))
        command = [str(script), *PAIR, "-m", str(model), "--precision", args.precision, "--json"]
        subprocess.run(command, env=env, check=True, capture_output=True)  # build once
        commands[name] = (command, env)
    runs: dict[str, list] = {name: [] for name in commands}
    for _ in range(args.runs):
        for name, (command, env) in commands.items():
            runs[name].append(measure_rss(command, env))
    for name, measured in runs.items():
        walls = [m.wall for m in measured]
        cpus = [m.cpu for m in measured]
        peaks = [m.peak_mib for m in measured]
        print(
            f"{name}: median {statistics.median(walls):.3f} s, best {min(walls):.3f} s, "
            f"CPU {statistics.median(cpus):.3f} s, peak {statistics.median(peaks):.0f} MiB "
            f"({args.precision}, {len(walls)} runs)"
        )


if __name__ == "__main__":
    main()
