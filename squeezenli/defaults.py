"""Batching defaults, shared by the engine and the command line (which must not import the
engine to show them in --help)."""

import os

# Batches are cut by a token budget (rows x padded length) as well as a row cap: short pairs
# fill big batches, long ones get fewer rows instead of more padding. Small budgets were
# fastest on 2 cores (bench/: 512 tokens beat 1024-4096; activations stay in cache), and a
# window of 1024 pairs sorted by length leaves ~1-3% padding on MNLI.
DEFAULT_BATCH_SIZE = 64
DEFAULT_BATCH_TOKENS = 512
DEFAULT_WINDOW = 1024
# Upper bounds: a batch's activations grow with rows x length x width (x length, in
# attention), and past these a raised --batch-tokens exhausts memory on long pairs (65536
# tokens of a BERT-base width take ~0.8 GB per 3072-wide activation). Batches of this size
# were never faster than the defaults here.
MAX_BATCH_SIZE = 4096
MAX_BATCH_TOKENS = 65536
# ...and a batch's attention scores (rows x length^2 per head) stay under this many.
MAX_ATTENTION = 1 << 22
# The shortest max_length: room for a pair's three special tokens and a little text.
MIN_LENGTH = 8
# Batches run at once (one per thread): far past any core count, short of a typo's 10^6.
MAX_THREADS = 1024


def cpus_available() -> int:
    """The CPUs this process may run on (its affinity mask, where the system has one): the
    threads used when none are asked for."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# auto: int8 where it is measured to agree with fp32 on the user's own weights (precision.py),
# else fp32.
