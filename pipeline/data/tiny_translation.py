"""Generate a tiny parallel corpus with a learnable mapping, as plain text files.

Layout (attnlab's text format, one sentence a line, aligned by line number):
OUT/{train,valid,test}.{en,de}. The "German" side translates each word through a fixed
dictionary and swaps every adjacent pair of words, so a model must look at its neighbours.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SPLITS = {"train": 1200, "valid": 60, "test": 60}


def _vocabulary(rng) -> tuple[list[str], list[str]]:
    letters = list("abcdefghiklmnoprstuvw")

    def word():
        return "".join(rng.choice(letters, size=int(rng.integers(2, 6))))

    src = sorted({word() for _ in range(80)})[:48]
    tgt = [w[::-1] + "en" for w in src]
    return src, tgt


def _translate(words: list[str], table: dict[str, str]) -> list[str]:
    out = [table[w] for w in words]
    for i in range(0, len(out) - 1, 2):
        out[i], out[i + 1] = out[i + 1], out[i]
    return out


def make_tiny_translation(out: str | Path, seed: int = 0, src_lang: str = "en", tgt_lang: str = "de") -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    src_words, tgt_words = _vocabulary(rng)
    table = dict(zip(src_words, tgt_words))
    for split, count in SPLITS.items():
        src_lines, tgt_lines = [], []
        for _ in range(count):
            words = list(rng.choice(src_words, size=int(rng.integers(3, 9))))
            src_lines.append(" ".join(words))
            tgt_lines.append(" ".join(_translate(words, table)))
        (out / f"{split}.{src_lang}").write_text("\n".join(src_lines) + "\n")
        (out / f"{split}.{tgt_lang}").write_text("\n".join(tgt_lines) + "\n")
    return out
