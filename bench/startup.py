"""One pair from a fresh process, installed as a user installs it (not a test).

    python bench/startup.py [--runs 15] [--precision int8] [--model DIR] [--against REV]

Installs this working tree with `pip install .` into a fresh virtual environment (and, with
--against, the git revision REV into another, with a cache of its own so that neither
prunes the other's builds), builds the model once in each, then runs
`squeezenli PREMISE HYPOTHESIS --json` --runs times per install, interleaved so the machine's
drift touches each alike, and prints the median and best wall time, the median CPU time (all
threads: a spinning helper thread shows there before it shows in wall time) and peak memory.
The development environment's editable install starts ~0.1 s slower than this.

Then, for this tree: where a start's time goes (`python -X importtime`'s top-level imports;
in one process, importing the CLI, creating the session, building the tokenizer, the rest
of loading and the first pair, median of --runs), and the thin client: `squeezenli score
--server URL PAIR --json` against a warm server of this tree, median of --runs.
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
from long_rows import cpu_name  # noqa: E402
from run import DEV_CACHE, PAIR, ROOT, ensure_model, measure_rss  # noqa: E402


def install(source: Path, folder: Path) -> Path:
    """A fresh virtual environment at folder with source pip-installed; its console script."""
    venv.create(folder, clear=True, with_pip=True)
    # With the serve extra, for the thin client's server (nothing of it loads for a pair).
    pip = [str(folder / "bin" / "python"), "-m", "pip", "install", "-q", f"{source}[serve]"]
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
    print(f"{cpu_name()}; model {model}")
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
    command, env = commands["this tree"]
    script = Path(command[0])
    breakdown(script.with_name("python"), model, args.precision, env, args.runs)
    thin_client(script, model, args.precision, env, args.runs)


# Run by this tree's environment: each stage of one start, in seconds, as JSON.
STAGES = """
import json, sys, time
started = time.perf_counter()
import squeezenli.cli.app  # noqa: F401  what the console script imports first
imported = time.perf_counter()
import squeezenli.runtime.model as model
spent = {"session": 0.0, "tokenizer": 0.0}
def timed(name, work):
    def run(*args, **kwargs):
        began = time.perf_counter()
        try:
            return work(*args, **kwargs)
        finally:
            spent[name] += time.perf_counter() - began
    return run
model.create_session = timed("session", model.create_session)
model.PairTokenizer.from_files = timed("tokenizer", model.PairTokenizer.from_files)
began = time.perf_counter()
nli = model.load_model(sys.argv[1], precision=sys.argv[2], progress=False)
loaded = time.perf_counter()
nli.probabilities([(sys.argv[3], sys.argv[4])])
done = time.perf_counter()
rest = loaded - began - spent["session"] - spent["tokenizer"]
print(json.dumps({"import the CLI": imported - started, **spent, "rest of loading": rest,
                  "first pair": done - loaded}))
"""


def breakdown(python: Path, model: Path, precision: str, env: dict, runs: int) -> None:
    """Where a start goes: top-level imports, then each stage in one process (STAGES)."""
    import json

    command = [str(python), "-X", "importtime", "-m", "squeezenli", *PAIR, "-m", str(model)]
    done = subprocess.run(
        [*command, "--precision", precision, "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    top: dict[str, float] = {}
    for line in done.stderr.splitlines():
        parts = line.split("|")
        if line.startswith("import time:") and len(parts) == 3 and not parts[2].startswith("  "):
            name = parts[2].strip().split(".")[0]
            if parts[1].strip().isdigit():
                top[name] = top.get(name, 0.0) + int(parts[1]) / 1e6
    biggest = sorted(top.items(), key=lambda item: -item[1])[:8]
    print(
        "imports (top level, cumulative): "
        + ", ".join(f"{n} {t * 1e3:.0f} ms" for n, t in biggest)
        + f"; all {sum(top.values()) * 1e3:.0f} ms"
    )
    stages: dict[str, list[float]] = {}
    for _ in range(runs):
        found = subprocess.run(
            [str(python), "-c", STAGES, str(model), precision, *PAIR],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        for name, seconds in json.loads(found.stdout.splitlines()[-1]).items():
            stages.setdefault(name, []).append(seconds)
    print(
        "stages (median of one process each): "
        + ", ".join(
            f"{name} {statistics.median(values) * 1e3:.0f} ms" for name, values in stages.items()
        )
    )


def thin_client(script: Path, model: Path, precision: str, env: dict, runs: int) -> None:
    """score --server against a warm server of the same install, median of runs."""
    import re
    import threading

    server = subprocess.Popen(
        [str(script), "serve", "-m", str(model), "--precision", precision, "--port", "0", "-q"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stderr is not None
        url = None
        for line in server.stderr:
            found = re.search(r"on (http://127\.0\.0\.1:\d+)", line)
            if found:
                url = found[1]
                break
        if url is None:
            raise SystemExit("the server did not start")
        threading.Thread(target=server.stderr.read, daemon=True).start()
        command = [str(script), "score", *PAIR, "--server", url, "--json"]
        subprocess.run(command, env=env, check=True, capture_output=True)  # warm
        measured = [measure_rss(command, env) for _ in range(runs)]
        walls = [m.wall for m in measured]
        peak = statistics.median(m.peak_mib for m in measured)
        print(
            f"score --server (thin client): median {statistics.median(walls):.3f} s, "
            f"best {min(walls):.3f} s, peak {peak:.0f} MiB"
        )
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
