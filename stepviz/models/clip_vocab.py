"""Writes CLIP's BPE tokenizer files (vocab.json, merges.txt) that the single-file configs share.

Source: CLIP's public byte-pair vocabulary `bpe_simple_vocab_16e6.txt.gz` (MIT licence), as OpenAI's CLIP
and the open_clip_torch package ship it. SD 1.x, SD 2.x and both SDXL tokenizers use this vocabulary;
they differ only in the padding token. The vocabulary is laid out as CLIP's SimpleTokenizer builds it:
the 256 byte characters, the same with the end-of-word mark "</w>", one token per merge (the first
49152 - 256 - 2 merges), then <|startoftext|> and <|endoftext|>: 49408 tokens.

    python -m stepviz.models.clip_vocab PATH/TO/bpe_simple_vocab_16e6.txt.gz
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

FOLDER = Path(__file__).resolve().parent / "configs" / "clip-bpe"
MERGES = 49152 - 256 - 2  # CLIP's SimpleTokenizer keeps this many


def byte_characters_clip_order() -> list[str]:
    """The printable stand-ins of the 256 bytes in CLIP's order: printable latin-1 bytes first, then the rest."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    characters = [chr(b) for b in printable]
    shifted = 0
    for byte in range(256):
        if byte not in printable:
            characters.append(chr(256 + shifted))
            shifted += 1
    return characters


def write(bpe_gz: Path, folder: Path = FOLDER) -> None:
    lines = gzip.open(bpe_gz, "rt", encoding="utf-8").read().split("\n")
    merges = [tuple(line.split()) for line in lines[1 : MERGES + 1]]
    characters = byte_characters_clip_order()
    tokens = characters + [c + "</w>" for c in characters] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}, ensure_ascii=False),
                                       encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n",
                                       encoding="utf-8")


if __name__ == "__main__":
    write(Path(sys.argv[1]))
