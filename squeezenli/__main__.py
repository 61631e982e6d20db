"""`python -m squeezenli`: the same entry as the console script."""

from squeezenli.entry import main

main()
