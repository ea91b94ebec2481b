"""WMT-style translation: the per-site-spec Transformer, label-smoothed CE, Adam with an
inverse-square-root schedule, beam search (or greedy) and detokenised sacreBLEU / chrF."""

from __future__ import annotations

import lightning as L
import sacrebleu
import torch
import torch.nn.functional as F

from attnlab.lightning_modules.attention import parse_sites

from .distributed import gather_lists
from .labels import BOS, EOS, PAD
from .serving import Serving, TranslationServing
from .settings import ModuleConfig, module_config
from .transformer import Transformer, beam_search, greedy_decode


def inverse_sqrt(warmup: int):
    """lr factor: linear warm-up to 1 at `warmup` steps, then sqrt(warmup / step)."""
    return lambda step: (step + 1) / warmup if step + 1 < warmup else (warmup / (step + 1)) ** 0.5


class TranslationModule(L.LightningModule):
    def __init__(self, config: ModuleConfig | dict, vocab: int):
        super().__init__()
        self.cfg, _ = module_config(config, None)
        self.vocab = vocab
        self.save_hyperparameters({"config": self.cfg.saved(), "vocab": vocab}, logger=False)
        t = self.cfg.translation
        self.sites = parse_sites(self.cfg.attention)
        self.model = Transformer(
            vocab,
            self.sites,
            t.encoder_layers,
            t.decoder_layers,
            t.d_model,
            t.heads,
            t.ffn,
            t.dropout,
            t.attention_options,
        )
        self._hyps: list[tuple[int, str]] = []

    def forward(self, src, tgt_in):
        return self.model(src, tgt_in)

    def training_step(self, batch, batch_idx):
        src, tgt_in, tgt_out, _ = batch
        logits = self.model(src, tgt_in)
        loss = F.cross_entropy(
            logits.flatten(0, 1).float(),
            tgt_out.flatten(),
            ignore_index=PAD,
            label_smoothing=self.cfg.translation.label_smoothing,
        )
        tokens = tgt_out.ne(PAD).sum()
        self.log("train/loss", loss, prog_bar=True, on_epoch=True, batch_size=int(tokens))
        return loss

    def translate(self, src) -> list[list[int]]:
        t = self.cfg.translation
        if t.decode == "greedy" or t.beam == 1:
            return greedy_decode(self.model, src, t.max_decode_extra)
        return beam_search(self.model, src, t.beam, t.length_penalty, t.max_decode_extra)

    def on_fit_start(self):
        """Report what the data filter dropped (counted, printed and logged as params)."""
        dm = self.trainer.datamodule
        if self.trainer.is_global_zero:
            print(f"translation data after filtering: {dm.filtered}")
        if self.logger is not None:
            self.logger.log_hyperparams(
                {**{f"data.filtered.{k}": v for k, v in dm.filtered.items()}, "vocab_size_actual": dm.vocab}
            )

    def on_validation_epoch_start(self):
        self._hyps = []

    def validation_step(self, batch, batch_idx):
        src, tgt_in, tgt_out, index = batch
        logits = self.model(src, tgt_in)
        loss = F.cross_entropy(logits.flatten(0, 1).float(), tgt_out.flatten(), ignore_index=PAD)
        self.log("val/nll", loss, batch_size=int(tgt_out.ne(PAD).sum()), sync_dist=True)
        dm = self.trainer.datamodule
        self._hyps += [(int(i), dm.decode(ids)) for i, ids in zip(index.tolist(), self.translate(src))]

    def on_validation_epoch_end(self):
        hyps = dict(gather_lists(self._hyps))
        if self.trainer.sanity_checking or not hyps:
            return
        refs = self.trainer.datamodule.valid_refs
        order = sorted(hyps)
        system, references = [hyps[i] for i in order], [[refs[i] for i in order]]
        bleu_metric = sacrebleu.BLEU()
        bleu = bleu_metric.corpus_score(system, references)
        chrf = sacrebleu.CHRF().corpus_score(system, references)
        self.log_dict({"val/bleu": bleu.score, "val/chrf": chrf.score})
        if self.logger is not None and self.trainer.is_global_zero:  # detokenised BLEU: which one, exactly
            self.logger.log_hyperparams({"bleu_signature": str(bleu_metric.get_signature())})

    def configure_optimizers(self):
        t = self.cfg.translation
        opt = torch.optim.Adam(self.parameters(), lr=t.lr, betas=t.betas, eps=1e-9)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, inverse_sqrt(t.warmup_steps))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def efficiency_input(self, datamodule):
        src, tgt_in, _, _ = next(iter(datamodule.val_dataloader()))
        return (src[:1], tgt_in[:1])

    def serving(self) -> Serving:
        g = torch.Generator().manual_seed(0)
        src = torch.randint(EOS + 1, self.vocab, (2, 7), generator=g)
        tgt_in = torch.randint(EOS + 1, self.vocab, (2, 5), generator=g)
        tgt_in[:, 0] = BOS
        return Serving(
            TranslationServing(self.model).eval(),
            (("src", torch.int64, (-1, -1)), ("tgt_in", torch.int64, (-1, -1))),
            (src, tgt_in),
            ("logits", torch.float32, (-1, -1, self.vocab)),
            describes=f"source ids (N, S) and target ids so far, from BOS={BOS} (N, T) -> next-token "
            f"logits (N, T, {self.vocab}); PAD={PAD}, EOS={EOS}",
        )

    def efficiency_items(self, inputs) -> int:
        """Cost is per target token."""
        return int(inputs[1].ne(PAD).sum())
