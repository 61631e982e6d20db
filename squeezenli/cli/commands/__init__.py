"""The squeezenli commands: each module parses one command's options and formats its
results; the work is done by the library modules one level up."""
