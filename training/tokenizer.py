"""A CLIPTokenizer for the toy world, built from the caption vocabulary.

CLIP's tokenizer is byte-level BPE: a word becomes its bytes (each shown as a
printable unicode character), the last one marked with the suffix "</w>", and the
merges in merges.txt join neighbours, lowest rank first. Here the vocabulary holds
the 256 byte characters with and without "</w>" (so any text, unknown words too,
tokenizes without error), one merge chain per caption word (so each caption word
is exactly one token), and CLIP's two special tokens at the end.
"""

from __future__ import annotations

import json
from pathlib import Path

from transformers import CLIPTokenizer

from stepviz.toy.world import BACKGROUNDS, COLOURS, PLACEMENTS, SHAPES

BOS_TOKEN = "<|startoftext|>"
EOS_TOKEN = "<|endoftext|>"  # also the padding and unknown token, as in SD 1.x
MODEL_MAX_LENGTH = 77
WORD_SUFFIX = "</w>"


def caption_words(two_shapes: bool = False) -> list[str]:
    """Every word any toy caption uses, in a fixed order; with `two_shapes` also version 3's "and" and placement
    words, appended (so every earlier word keeps its merges: the shipped tokenizer is the one without)."""
    words = ["a", "on", "background", *COLOURS, *SHAPES, *BACKGROUNDS]
    if two_shapes:
        words += ["and", *dict.fromkeys(word for placement in PLACEMENTS for word in placement.split())]
    return words


def byte_characters() -> list[str]:
    """The printable stand-in character for each byte 0..255 (GPT-2/CLIP byte-level mapping).

    Printable latin-1 bytes stand for themselves; the others are shifted to code
    points from 256 up, in byte order.
    """
    printable = set(range(ord("!"), ord("~") + 1)) | set(range(0xA1, 0xAC + 1)) | set(range(0xAE, 0xFF + 1))
    characters, shifted = [], 0
    for byte in range(256):
        if byte in printable:
            characters.append(chr(byte))
        else:
            characters.append(chr(256 + shifted))
            shifted += 1
    return characters


def _apply_merges(symbols: list[str], ranks: dict[tuple[str, str], int]) -> list[str]:
    """Plain BPE: repeatedly join the adjacent pair with the lowest merge rank."""
    while len(symbols) > 1:
        pairs = [(ranks.get(pair, None), i) for i, pair in enumerate(zip(symbols, symbols[1:]))]
        pairs = [(rank, i) for rank, i in pairs if rank is not None]
        if not pairs:
            break
        _, i = min(pairs)
        symbols = symbols[:i] + [symbols[i] + symbols[i + 1]] + symbols[i + 2 :]
    return symbols


def build_vocab_and_merges(words: list[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Vocabulary and merges that make each word in `words` a single token.

    Merges are appended greedily: while a word still splits, merge its first
    remaining pair. A new merge has the lowest priority, so it never changes how
    an earlier word (already one token under the earlier merges) is split.
    """
    characters = byte_characters()
    tokens = characters + [c + WORD_SUFFIX for c in characters]
    merges: list[tuple[str, str]] = []
    ranks: dict[tuple[str, str], int] = {}
    for word in words:
        symbols = list(word[:-1]) + [word[-1] + WORD_SUFFIX]
        symbols = _apply_merges(symbols, ranks)
        while len(symbols) > 1:
            pair = (symbols[0], symbols[1])
            ranks[pair] = len(merges)
            merges.append(pair)
            tokens.append(pair[0] + pair[1])
            symbols = _apply_merges(symbols, ranks)
    tokens = list(dict.fromkeys(tokens)) + [BOS_TOKEN, EOS_TOKEN]
    return {token: i for i, token in enumerate(tokens)}, merges


def write_tokenizer(folder: str | Path, two_shapes: bool = False) -> CLIPTokenizer:
    """Write vocab.json and merges.txt into `folder`, then save a CLIPTokenizer there (`two_shapes`: version 3's
    vocabulary, which knows "and" and the placement words)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab, merges = build_vocab_and_merges(caption_words(two_shapes))
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    lines = ["#version: 0.2 - toy-world caption vocabulary"] + [f"{a} {b}" for a, b in merges]
    (folder / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=MODEL_MAX_LENGTH)
    tokenizer.save_pretrained(folder)
    return tokenizer


def load_tokenizer(folder: str | Path) -> CLIPTokenizer:
    return CLIPTokenizer.from_pretrained(str(folder))
