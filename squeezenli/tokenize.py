"""Pair encoding with the `tokenizers` library: [CLS] premise [SEP] hypothesis [SEP].

A tokenizer.json may carry padding and truncation of its own (one common BERT tokenizer.json
pads everything to 128): both are switched off here, and our own truncation applied.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import orjson

from .errors import InputError, ModelError

MIN_LENGTH = 8  # room for the three special tokens and a little text


class PairTokenizer:
    """Encodes premise/hypothesis pairs, truncating longest-first as transformers does."""

    def __init__(self, tokenizer, max_length: int) -> None:
        if max_length < MIN_LENGTH:
            raise InputError(f"--max-length must be at least {MIN_LENGTH}, got {max_length}")
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length, strategy="longest_first")
        self._tokenizer = tokenizer
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

    def encode(self, pairs: Sequence[tuple[str, str]]) -> list:
        """tokenizers Encodings (ids, type_ids) for each pair, in order."""
        return self._tokenizer.encode_batch(list(pairs))

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
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    return tokenizer
