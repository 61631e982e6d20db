"""The console script. The stop signals are taken over before anything heavy is imported,
so a Ctrl-C or SIGTERM while numpy or onnxruntime load ends the run with one line and
128 + the signal's number, not a traceback (cli/signals.py)."""

from __future__ import annotations


def main() -> None:
    import os

    # numpy's OpenBLAS starts a thread per core when imported, and they spin: a quarter of a
    # one-pair start's CPU time (bench/startup.py). squeezenli never multiplies matrices in
    # numpy (onnxruntime does), so one is enough. A value the user set is kept.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from squeezenli.cli import signals

    signals.install()
    from squeezenli.cli.app import main as run

    run()


if __name__ == "__main__":
    main()
