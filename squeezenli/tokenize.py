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

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from .errors import InputError, ModelError

MIN_LENGTH = 8  # room for the three special tokens and a little text
SPECIAL_TOKENS = ("unk", "sep", "pad", "cls", "mask")


@dataclass(frozen=True)
class PairIds:
    """A pair as the model reads it: token ids and token type ids."""

    ids: list[int]
    type_ids: list[int]


@dataclass(frozen=True)
class _Template:
    """Where the special tokens and the two sides go: an item is (token id, type id), or
    (None, type id) for the first side, (-1, type id) for the second."""

    items: tuple[tuple[int | None, int], ...]

    @property
    def special_count(self) -> int:
        return sum(1 for token, _ in self.items if token is not None and token >= 0)

    def apply(self, first: list[int], second: list[int]) -> PairIds:
        ids: list[int] = []
        types: list[int] = []
        for token, type_id in self.items:
            part = first if token is None else second if token < 0 else [token]
            ids += part
            types += [type_id] * len(part)
        return PairIds(ids, types)


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
    return _Template(tuple(items))


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

    def __init__(self, tokenizer, max_length: int) -> None:
        if max_length < MIN_LENGTH:
            raise InputError(f"--max-length must be at least {MIN_LENGTH}, got {max_length}")
        tokenizer.no_padding()
        tokenizer.no_truncation()
        self._tokenizer = tokenizer
        self._template = _pair_template(tokenizer)
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
        elif vocab is not None:
            tokenizer = _wordpiece(vocab, options)
        else:
            raise ModelError("no tokenizer.json or vocab.txt")
        return cls(tokenizer, max_length)

    def encode(self, pairs: Sequence[tuple[str, str]]) -> list[PairIds]:
        """Ids and type ids for each pair, in order (module docstring)."""
        sides = self._tokenizer.encode_batch(
            [text for pair in pairs for text in pair], add_special_tokens=False
        )
        budget = self.max_length - self._template.special_count
        encoded = []
        for i in range(0, len(sides), 2):
            first, second = sides[i].ids, sides[i + 1].ids
            keep_first, keep_second = truncated_lengths(len(first), len(second), budget)
            encoded.append(self._template.apply(first[:keep_first], second[:keep_second]))
        return encoded

    def token_to_id(self, token: str) -> int | None:
        return self._tokenizer.token_to_id(token)


def model_max_length(tokenizer_config: Path | None, max_positions: int) -> int:
    """The longest input the model takes: its position table, or less if the tokenizer says so."""
    limit = _read_options(tokenizer_config).get("model_max_length")
    if isinstance(limit, int) and 0 < limit < max_positions:
        return limit
    return max_positions


def _read_options(path: Path | None) -> dict:
    if path is None:
        return {}
    try:
        data = orjson.loads(Path(path).read_bytes())
    except (OSError, orjson.JSONDecodeError) as err:
        raise ModelError(f"{path}: cannot read tokenizer config: {err}") from None
    return data if isinstance(data, dict) else {}


def _wordpiece(vocab_path: Path, options: dict):
    """A BERT WordPiece tokenizer from vocab.txt, as transformers' BertTokenizerFast builds it."""
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
    return tokenizer
