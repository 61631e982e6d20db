"""Pair encoding with the `tokenizers` library: [CLS] premise [SEP] hypothesis [SEP].

A tokenizer.json may carry padding and truncation of its own (one common BERT tokenizer.json
pads everything to 128): both are switched off here, and our own truncation applied. The
library's pair truncation keeps every overflow piece of both sides and merges them pairwise:
one 220 KB row took 2.4 GB and 74 s. So each side is encoded on its own, the id lists are
cut longest-first exactly as the library would cut them, and the model's pair template
([CLS] A [SEP] B [SEP], or <s> A </s></s> B </s>) is put around them: time and memory grow
linearly with the input, and the ids equal transformers'.
"""

from __future__ import annotations

import os
import re
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from squeezenli.defaults import MIN_LENGTH
from squeezenli.errors import InputError, ModelError
from squeezenli.models.config import read_config, shown

SPECIAL_TOKENS = ("unk", "sep", "pad", "cls", "mask")


@dataclass(frozen=True)
class PairIds:
    """A pair as the model reads it: token ids and token type ids, and whether tokens of
    either side were cut to fit the model's length."""

    ids: list[int]
    type_ids: list[int]
    truncated: bool = False


@dataclass(frozen=True)
class TextTokens:
    """A text's token ids and each token's character span in it ([tokens, 2]: start, end),
    as arrays: a 16 MiB document is ~4M tokens."""

    ids: np.ndarray
    offsets: np.ndarray


@dataclass(frozen=True)
class _Template:
    """Where the special tokens and the two sides go: an item is (token id, type id), or
    (None, type id) for the first side, (-1, type id) for the second."""

    items: tuple[tuple[int | None, int], ...]

    @property
    def special_count(self) -> int:
        return sum(1 for token, _ in self.items if token is not None and token >= 0)

    def apply(self, first: list[int], second: list[int], truncated: bool = False) -> PairIds:
        ids: list[int] = []
        types: list[int] = []
        for token, type_id in self.items:
            part = first if token is None else second if token < 0 else [token]
            ids += part
            types += [type_id] * len(part)
        return PairIds(ids, types, truncated)


def _pair_template(tokenizer) -> _Template:
    """Read the template off the tokenizer's own post-processing of a short pair: positions
    it marks as special are the template's tokens, the others the first side then the second."""
    first, second = tokenizer.encode_batch(["a", "b"], add_special_tokens=False)
    pair = tokenizer.post_process(first, second, add_special_tokens=True)
    items: list[tuple[int | None, int]] = []
    seen = 0
    for token, type_id, special in zip(pair.ids, pair.type_ids, pair.special_tokens_mask):
        if special:
            items.append((token, type_id))
            continue
        side = (None if seen < len(first.ids) else -1, type_id)
        seen += 1
        if not items or items[-1] != side:
            items.append(side)
    found = {token for token, _ in items}
    if None not in found or -1 not in found:
        raise ModelError(
            "the tokenizer gives no token for 'a' or 'b': its normalizer or pre-tokenizer "
            "drops text, so the model would read nothing of a pair"
        )
    return _Template(tuple(items))


# Texts longer than this many characters are encoded in pieces of about this size.
PIECE_CHARS = 1 << 16


def _piece_end(text: str, start: int) -> int:
    """Where the piece of text from start ends: at the start of the last run of white space
    before start + PIECE_CHARS (a run's first character after a non-space), or there, in a
    word longer than a piece (no tokenizer keeps such a word whole: WordPiece makes it one
    unknown token)."""
    limit = start + PIECE_CHARS
    if limit >= len(text):
        return len(text)
    found = deque(_RUN_START.finditer(text, start + 1, limit + 1), maxlen=1)
    return found[0].start() if found else limit


_RUN_START = re.compile(r"(?<=\S)\s")


def truncated_lengths(first: int, second: int, budget: int) -> tuple[int, int]:
    """How many tokens of each side fit in budget, as the tokenizers library's longest-first
    cuts them: the shorter side is kept whole if the longer still fits in what is left,
    else both get half (the longer side the odd one)."""
    if first + second <= budget:
        return first, second
    short, long = sorted((first, second))
    long = short if short > budget else max(short, budget - short)
    if short + long > budget:
        short, long = budget // 2, budget // 2 + budget % 2
    return (long, short) if first > second else (short, long)


class PairTokenizer:
    """Encodes premise/hypothesis pairs, truncating longest-first as transformers does."""

    def __init__(self, tokenizer, max_length: int, top_id: int | None = None) -> None:
        """top_id: the largest token id, when the caller knows it (a vocab.txt read here);
        else check_fits asks the tokenizer for its whole vocabulary (~10 ms for 30k)."""
        if max_length < MIN_LENGTH:
            raise InputError(f"`max_length` must be at least {MIN_LENGTH}, got {max_length}")
        tokenizer.no_padding()
        tokenizer.no_truncation()
        self._tokenizer = tokenizer
        try:
            self._template = _pair_template(tokenizer)
        except BaseException as err:  # a crafted tokenizer.json: an error or a Rust panic
            if isinstance(err, (KeyboardInterrupt, SystemExit, ModelError)):
                raise
            raise ModelError(f"the tokenizer fails on the pair ('a', 'b'): {err}") from None
        self._top_id = top_id
        self.max_length = max_length

    @classmethod
    def from_files(
        cls,
        *,
        tokenizer_json: Path | None,
        vocab: Path | None,
        tokenizer_config: Path | None,
        max_length: int,
    ) -> PairTokenizer:
        options = _read_options(tokenizer_config)
        if tokenizer_json is not None:
            from tokenizers import Tokenizer

            try:
                tokenizer = Tokenizer.from_file(str(tokenizer_json))
            except Exception as err:  # the Rust side raises a bare Exception
                raise ModelError(f"{tokenizer_json}: cannot load tokenizer: {err}") from None
            try:
                return cls(tokenizer, max_length)
            except ModelError as err:
                raise ModelError(f"{tokenizer_json}: {err}") from None
        if vocab is None:
            raise ModelError("no tokenizer.json or vocab.txt")
        tokenizer, top_id = _wordpiece(vocab, options)
        return cls(tokenizer, max_length, top_id)

    def encode(self, pairs: Sequence[tuple[str, str]]) -> list[PairIds | str]:
        """Ids and type ids for each pair, in order (module docstring); for a pair the
        tokenizer fails on, the reason instead."""
        texts = [text for pair in pairs for text in pair]
        budget = self.max_length - self._template.special_count
        short = [i for i, text in enumerate(texts) if len(text) <= PIECE_CHARS]
        sides: list[Any] = [None] * len(texts)
        try:
            ids = [e.ids for e in self._encode_batch([texts[i] for i in short])]
        except _TokenizerFailure:  # one text broke the batch: find it, keep the others
            ids = [self._encode_one(texts[i]) for i in short]
        for i, found in zip(short, ids):
            sides[i] = (found, len(found)) if isinstance(found, list) else found
        for i, text in enumerate(texts):
            if sides[i] is None:
                sides[i] = self._encode_long(text, budget + 1)
        for i, side in enumerate(sides):
            if not isinstance(side, str) and side[1] == 0 and texts[i].strip():
                sides[i] = (
                    f"the tokenizer gives no token for the {('first', 'second')[i % 2]} text of "
                    "the pair: the model would read nothing of it"
                )
        encoded: list[PairIds | str] = []
        for at, (first, second) in enumerate(zip(sides[::2], sides[1::2])):
            if isinstance(first, str) or isinstance(second, str):
                encoded.append(first if isinstance(first, str) else str(second))
                continue
            if budget % 2 and min(first[1], second[1]) > budget:
                # Both sides are cut, and an odd budget gives its odd token to the longer:
                # the long texts' lengths are counted to the end.
                first, second = (
                    self._encode_long(texts[2 * at + n], budget + 1, count_all=True)
                    if len(texts[2 * at + n]) > PIECE_CHARS
                    else side
                    for n, side in enumerate((first, second))
                )
                if isinstance(first, str) or isinstance(second, str):
                    encoded.append(first if isinstance(first, str) else str(second))
                    continue
            keep_first, keep_second = truncated_lengths(first[1], second[1], budget)
            cut = (keep_first, keep_second) != (first[1], second[1])
            encoded.append(
                self._template.apply(first[0][:keep_first], second[0][:keep_second], cut)
            )
        return encoded

    @property
    def special_count(self) -> int:
        """Tokens the pair template adds around the two texts."""
        return self._template.special_count

    def pair(self, first: list[int], second: list[int]) -> PairIds:
        """The pair of two texts' ids as they are (the caller made them fit)."""
        return self._template.apply(first, second)

    def tokens(self, text: str) -> TextTokens | str:
        """A text's ids and character spans, a piece at a time past PIECE_CHARS (as
        _encode_long): for cutting a document into windows. The reason, if the tokenizer
        fails on it."""
        ids: list[np.ndarray] = [np.zeros(0, np.int64)]
        offsets: list[np.ndarray] = [np.zeros((0, 2), np.int64)]
        start = 0
        while start < len(text):
            end = _piece_end(text, start) if len(text) > PIECE_CHARS else len(text)
            try:
                (found,) = self._encode_batch([text[start:end]])
            except _TokenizerFailure as failure:
                return failure.reason
            ids.append(np.array(found.ids, np.int64))
            offsets.append(np.array(found.offsets, np.int64).reshape(-1, 2) + start)
            start = end
        return TextTokens(np.concatenate(ids), np.concatenate(offsets))

    def _encode_long(
        self, text: str, keep: int, count_all: bool = False
    ) -> tuple[list[int], int] | str:
        """A text longer than PIECE_CHARS, encoded a piece at a time (each cut where white
        space begins, which every pre-tokenizer splits at): its first `keep` ids and how
        many it has, counted to the end with count_all (else at least `keep`: the pieces
        past them change nothing). Memory stays that of one piece, however long the text
        (an 8 MiB text encoded whole took 2.7 GB); the ids equal those of the whole text."""
        ids: list[int] = []
        count = 0
        start = 0
        while start < len(text) and (count_all or count < keep):
            end = _piece_end(text, start)
            found = self._encode_one(text[start:end])
            if isinstance(found, str):
                return found
            count += len(found)
            if len(ids) < keep:
                ids += found[: keep - len(ids)]
            start = end
        return ids, count

    def _encode_batch(self, texts: list[str]) -> list:
        try:
            with _panic_messages_hidden():
                return self._tokenizer.encode_batch(texts, add_special_tokens=False)
        except BaseException as err:  # a Rust panic arrives as pyo3's PanicException
            if isinstance(err, (KeyboardInterrupt, SystemExit)) or not _is_tokenizer_error(err):
                raise
            raise _TokenizerFailure(err) from None

    def _encode_one(self, text: str) -> list[int] | str:
        try:
            return self._encode_batch([text])[0].ids
        except _TokenizerFailure as failure:
            return failure.reason

    def check_fits(self, vocab_size: int, type_vocab_size: int | None, origin: str) -> None:
        """Refuse a tokenizer whose ids or token types the model's tables do not hold: the
        run would otherwise stop at the first pair that uses one. type_vocab_size None: the
        model takes no token types (RoBERTa, DeBERTa-v3, DistilBERT exports)."""
        top = self._top_id
        if top is None:
            top = max(self._tokenizer.get_vocab(with_added_tokens=True).values(), default=-1)
        if top >= vocab_size:
            raise ModelError(
                f"{origin}: the tokenizer has token id {top} but vocab_size is "
                f"{vocab_size}: the tokenizer and the model do not belong together"
            )
        types = max(type_id for _, type_id in self._template.items)
        if type_vocab_size is not None and types >= type_vocab_size:
            raise ModelError(
                f"{origin}: pairs use token type {types} but type_vocab_size is {type_vocab_size}"
            )

    def token_to_id(self, token: str) -> int | None:
        return self._tokenizer.token_to_id(token)


class _PanicFilter:
    """While the tokenizers library runs, fd 2 points at a pipe; once it is done, what came
    through is written on to the real stderr, less a Rust panic's own lines (its message
    is the row's error, in one line). fd 2 is process-wide: what other threads write
    meanwhile (an access-log line, a skipped row's report) is forwarded, never lost, and
    threads tokenizing at once share one redirection."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._saved = -1
        self._pipe: tuple[int, int] = (-1, -1)

    @contextmanager
    def active(self) -> Iterator[None]:
        if not self._enter():
            yield
            return
        try:
            yield
        finally:
            self._exit()

    def _enter(self) -> bool:
        with self._lock:
            if self._depth == 0:
                try:
                    saved = os.dup(2)
                except OSError:  # no stderr at all: nothing to hide
                    return False
                read, write = os.pipe()
                os.set_blocking(read, False)
                os.dup2(write, 2)
                self._saved, self._pipe = saved, (read, write)
            self._depth += 1
            return True

    def _exit(self) -> None:
        with self._lock:
            self._depth -= 1
            if self._depth:
                self._forward()  # keep the pipe from filling while others still tokenize
                return
            os.dup2(self._saved, 2)
            os.close(self._pipe[1])
            self._forward()
            os.close(self._pipe[0])
            os.close(self._saved)

    def release(self) -> None:
        """Give fd 2 back now, forwarding what came through: the process is ending without
        unwinding (os._exit), and what threads wrote meanwhile (a forced stop's access lines
        and its last words) would be lost in the pipe."""
        if not self._lock.acquire(timeout=1.0):
            return
        try:
            if self._depth:
                os.dup2(self._saved, 2)
                self._forward()
                self._depth = 0
        finally:
            self._lock.release()

    def _forward(self) -> None:
        chunks = []
        while True:
            try:
                chunk = os.read(self._pipe[0], 1 << 16)
            except BlockingIOError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        kept = _without_panics(b"".join(chunks))
        while kept:
            kept = kept[os.write(self._saved, kept) :]


_PANIC_START = re.compile(rb"^thread '.*'( \(\d+\))? panicked at ")
_PANIC_END = re.compile(rb"^note: ")  # the closing note, with a backtrace or without


def _without_panics(data: bytes) -> bytes:
    """`data` less each Rust panic report (from its "thread '...' panicked at" line to its
    closing note or backtrace)."""
    kept, inside = [], False
    for line in data.splitlines(keepends=True):
        if _PANIC_START.match(line):
            inside = True
        if not inside:
            kept.append(line)
        elif _PANIC_END.match(line):
            inside = False
    return b"".join(kept)


_PANIC_FILTER = _PanicFilter()
_panic_messages_hidden = _PANIC_FILTER.active
release_stderr = _PANIC_FILTER.release


class _TokenizerFailure(Exception):
    """The tokenizer failed (a pre-tokenizer regex past its backtracking limit panics)."""

    @property
    def reason(self) -> str:
        """What a row's error says."""
        lines = str(self.args[0]).strip().splitlines()
        return f"the tokenizer failed on this text ({lines[0] if lines else 'no reason'})"


def _is_tokenizer_error(err: BaseException) -> bool:
    """An error of the tokenizers library: its exceptions, or a panic from its Rust code."""
    return type(err).__name__ == "PanicException" or isinstance(err, Exception)


def model_max_length(tokenizer_config: Path | None, max_positions: int) -> int:
    """The longest input the model takes: its position table, or less if the tokenizer says so."""
    limit = _read_options(tokenizer_config).get("model_max_length")
    if isinstance(limit, int) and 0 < limit < max_positions:
        return limit
    return max_positions


def _read_options(path: Path | None) -> dict:
    if path is None:
        return {}
    data = read_config(path, "the tokenizer config")
    for key, kinds in _OPTION_TYPES.items():
        if key in data and not isinstance(data[key], kinds):
            raise ModelError(f"{path}: {key} has the wrong type ({shown(data[key])})")
    for key in SPECIAL_TOKENS:
        token = data.get(f"{key}_token")
        if isinstance(token, dict):  # transformers writes an AddedToken as an object
            token = token.get("content")
        if token is not None and not isinstance(token, str):
            raise ModelError(f"{path}: {key}_token must be text, got {shown(token)}")
        if token is not None:
            data[f"{key}_token"] = token
    return data


# The tokenizer_config.json fields read here, and the JSON types they may have.
_OPTION_TYPES: dict[str, tuple[type, ...]] = {
    "do_lower_case": (bool,),
    "strip_accents": (bool, type(None)),
    "tokenize_chinese_chars": (bool,),
    "model_max_length": (int, float),
}


def _wordpiece(vocab_path: Path, options: dict) -> tuple[Any, int]:
    """A BERT WordPiece tokenizer from vocab.txt, as transformers' BertTokenizerFast builds it,
    and its largest id (its special tokens are in the vocabulary: none is added)."""
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece

    try:
        lines = Path(vocab_path).read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError) as err:
        raise ModelError(f"{vocab_path}: cannot read vocabulary: {err}") from None
    if lines and lines[-1] == "":
        lines.pop()
    # A token listed twice keeps its last index, as transformers' load_vocab does.
    vocab = {token.rstrip("\r"): index for index, token in enumerate(lines)}
    unk, cls, sep = (
        str(options.get(k, d))
        for k, d in (("unk_token", "[UNK]"), ("cls_token", "[CLS]"), ("sep_token", "[SEP]"))
    )
    missing = [t for t in (unk, cls, sep) if t not in vocab]
    if missing:
        raise ModelError(f"{vocab_path}: vocabulary lacks {', '.join(missing)}")
    lowercase = bool(options.get("do_lower_case", True))
    tokenizer = Tokenizer(WordPiece(vocab, unk_token=unk, max_input_chars_per_word=100))
    tokenizer.normalizer = normalizers.BertNormalizer(
        clean_text=True,
        handle_chinese_chars=bool(options.get("tokenize_chinese_chars", True)),
        strip_accents=options.get("strip_accents"),
        lowercase=lowercase,
    )
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.BertProcessing((sep, vocab[sep]), (cls, vocab[cls]))
    # As transformers registers them: typed into the text, they are the special tokens, not
    # pieces of it ('[SEP]' -> 102, not '[', 'sep', ']').
    specials = [str(options.get(f"{k}_token", f"[{k.upper()}]")) for k in SPECIAL_TOKENS]
    tokenizer.add_special_tokens([t for t in specials if t in vocab])
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    return tokenizer, max(vocab.values())
