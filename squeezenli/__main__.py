"""`python -m squeezenli`: the same entry as the console script."""

from squeezenli.cli.entry import main

main()
