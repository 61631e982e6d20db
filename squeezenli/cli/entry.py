"""The console script. The stop signals are taken over before anything heavy is imported,
so a Ctrl-C or SIGTERM while numpy or onnxruntime load ends the run with one line and
128 + the signal's number, not a traceback (cli/signals.py)."""

from __future__ import annotations


def main() -> None:
    from squeezenli.cli import signals

    signals.install()
    from squeezenli.cli.app import main as run

    run()


if __name__ == "__main__":
    main()
