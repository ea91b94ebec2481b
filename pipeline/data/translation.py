"""Parallel text for translation: plain text files or a `datasets` folder, a shared sentencepiece
vocabulary saved beside the run, filtering that is counted, and token-bucketed batches.

Text layout: ROOT/{train,valid}.{src,tgt} (one sentence a line, aligned), plain or gzipped, with
`val` or `dev` accepted for `valid`: Multi30k's raw release (train/val/test_2016_flickr .gz) reads
as is. `datasets` layout: a folder written by `DatasetDict.save_to_disk` with train/validation
splits whose rows hold {"translation": {src: ..., tgt: ...}} (WMT14's schema).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import lightning as L
import sentencepiece as spm
import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, DistributedSampler, Sampler

from attnlab.lightning_modules.labels import BOS, EOS, PAD, UNK
from attnlab.pipeline.config.errors import ConfigError
from attnlab.pipeline.data.inputs import DataInput, split_input, texts_digest
from attnlab.pipeline.data.layouts import looks_like_datasets, read_text
from attnlab.pipeline.data.loaders import loader_options, rank_and_world


def _read_datasets(root: Path, split: str, src: str, tgt: str) -> tuple[list[str], list[str]]:
    from datasets import load_from_disk

    data = load_from_disk(str(root))
    name = {"valid": "validation"}.get(split, split)
    if name not in data:
        raise ConfigError(f"datasets folder {root} has no {name!r} split (it has {', '.join(data)})")
    rows = data[name]["translation"]
    return [r[src] for r in rows], [r[tgt] for r in rows]


def read_parallel(root: str | Path, split: str, src: str, tgt: str) -> tuple[list[str], list[str]]:
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(
            f"translation data folder {root} does not exist; pass a folder with {split}.{src}/"
            f"{split}.{tgt} or a datasets save_to_disk folder, or --data tiny"
        )
    if looks_like_datasets(root):
        return _read_datasets(root, split, src, tgt)
    return read_text(root, split, src, tgt)


def train_vocabulary(sentences: list[str], out: Path, vocab_size: int) -> spm.SentencePieceProcessor:
    """A shared BPE vocabulary (source + target), saved to out/spm.model; reused when present.

    Trained in a private folder and moved into place, so trials sharing `out` never read a half-written model.
    """
    model = out / "spm.model"
    if not model.is_file():
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".spm-", dir=out) as tmp:
            spm.SentencePieceTrainer.train(
                sentence_iterator=iter(sentences),
                model_prefix=str(Path(tmp) / "spm"),
                vocab_size=vocab_size,
                model_type="bpe",
                character_coverage=1.0,
                pad_id=PAD,
                unk_id=UNK,
                bos_id=BOS,
                eos_id=EOS,
                hard_vocab_limit=False,
                minloglevel=2,
            )
            os.replace(Path(tmp) / "spm.vocab", out / "spm.vocab")
            os.replace(Path(tmp) / "spm.model", model)
    return spm.SentencePieceProcessor(model_file=str(model))


class TokenBuckets(Sampler):
    """Batches of similar length holding at most `max_tokens` padded tokens, sharded over DDP ranks.

    Which batches a rank reads, in which order, is its `sampler`'s: a DistributedSampler over the
    batch list (training: shuffled from `seed + epoch`, the same order on every rank, wrapped round
    so every rank takes the same number of steps and DDP never waits on a rank that ran out;
    Lightning calls `sampler.set_epoch` before each epoch, also the first one after a resume) or
    an unpadded one in order (evaluation: each batch read by exactly one rank).
    """

    def __init__(
        self,
        lengths: list[int],
        max_tokens: int,
        shuffle: bool,
        seed: int = 0,
        rank: int = 0,
        world: int = 1,
        pad: bool = True,
    ):
        order = sorted(range(len(lengths)), key=lambda i: lengths[i])
        self.batches, batch, longest = [], [], 0
        for i in order:
            longest_if = max(longest, lengths[i])
            if batch and longest_if * (len(batch) + 1) > max_tokens:
                self.batches.append(batch)
                batch, longest_if = [], lengths[i]
            batch.append(i)
            longest = longest_if
        if batch:
            self.batches.append(batch)
        while not pad and len(self.batches) < world and max(map(len, self.batches)) > 1:
            # Every rank must run the evaluation loop (its epoch end gathers across ranks): split the
            # largest batch until each rank has one.
            big = max(self.batches, key=len)
            self.batches.remove(big)
            self.batches += [big[: len(big) // 2], big[len(big) // 2 :]]
        share = DistributedSampler if pad else UnrepeatedDistributedSampler
        self.sampler = share(self.batches, num_replicas=world, rank=rank, shuffle=shuffle, seed=seed)

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __iter__(self):
        for b in self.sampler:  # a generator: the order is drawn when the epoch starts reading
            yield self.batches[b]

    def __len__(self) -> int:
        return len(self.sampler)


def collate(items):
    """[(src ids, tgt ids, index)] -> padded (src, tgt_in, tgt_out, index) with BOS/EOS."""
    src = torch.nn.utils.rnn.pad_sequence(
        [torch.tensor(s + [EOS]) for s, _, _ in items], batch_first=True, padding_value=PAD
    )
    tgt = [torch.tensor([BOS] + t + [EOS]) for _, t, _ in items]
    tgt = torch.nn.utils.rnn.pad_sequence(tgt, batch_first=True, padding_value=PAD)
    return src, tgt[:, :-1], tgt[:, 1:], torch.tensor([i for _, _, i in items])


class TranslationDataModule(L.LightningDataModule):
    def __init__(
        self,
        root: str | Path,
        vocab_dir: str | Path,
        src_lang: str = "en",
        tgt_lang: str = "de",
        vocab_size: int = 8000,
        max_tokens: int = 4096,
        max_len: int = 256,
        seed: int = 0,
    ):
        super().__init__()
        self.root, self.vocab_dir = Path(root), Path(vocab_dir)
        self.src_lang, self.tgt_lang = src_lang, tgt_lang
        self.vocab_size, self.max_tokens, self.max_len, self.seed = vocab_size, max_tokens, max_len, seed
        self.raw = {
            split: read_parallel(self.root, split, src_lang, tgt_lang) for split in ("train", "valid")
        }
        self.sp = None
        self.filtered: dict[str, int] = {}

    def _encode(self, split: str):
        src, tgt = self.raw[split]
        pairs, empty, long = [], 0, 0
        for s, t in zip(src, tgt):
            if not s.strip() or not t.strip():
                empty += 1
                continue
            a, b = self.sp.encode(s), self.sp.encode(t)
            if split == "train" and (len(a) + 1 > self.max_len or len(b) + 2 > self.max_len):
                long += 1
                continue
            pairs.append((a, b, len(pairs)))
        self.filtered.update(
            {f"{split}_empty": empty, f"{split}_too_long": long, f"{split}_kept": len(pairs)}
        )
        if not pairs:
            raise ConfigError(
                f"no usable {split} sentence pairs in {self.root} ({empty} empty, {long} too long)"
            )
        return pairs

    def setup(self, stage: str | None = None) -> None:
        if self.sp is not None:
            return
        src, tgt = self.raw["train"]
        self.sp = train_vocabulary([x for x in src + tgt if x.strip()], self.vocab_dir, self.vocab_size)
        self.train_pairs, self.valid_pairs = self._encode("train"), self._encode("valid")
        self.valid_refs = [t for s, t in zip(*self.raw["valid"]) if s.strip() and t.strip()]

    def data_inputs(self) -> list[DataInput]:
        """Each split's sentences: digest of the text, count of pairs kept after filtering."""
        self.setup()
        kept = {"train": len(self.train_pairs), "valid": len(self.valid_pairs)}
        return [
            split_input(self.root, "train" if split == "train" else "val", texts_digest(*self.raw[split]), n)
            for split, n in kept.items()
        ]

    @property
    def vocab(self) -> int:
        self.setup()
        return self.sp.get_piece_size()

    def decode(self, ids: list[int]) -> str:
        return self.sp.decode([i for i in ids if i not in (PAD, BOS, EOS)])

    def _loader(self, pairs, train: bool):
        lengths = [max(len(a) + 1, len(b) + 2) for a, b, _ in pairs]
        rank, world = rank_and_world(self.trainer)
        sampler = TokenBuckets(
            lengths, self.max_tokens, shuffle=train, seed=self.seed, rank=rank, world=world, pad=train
        )
        # The token buckets are in memory already: no worker processes, only the pinning.
        return DataLoader(pairs, batch_sampler=sampler, collate_fn=collate, **loader_options(self.trainer, 0))

    def train_dataloader(self):
        return self._loader(self.train_pairs, True)

    def val_dataloader(self):
        return self._loader(self.valid_pairs, False)
