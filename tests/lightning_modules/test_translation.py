"""Translation: per-site specs, no future leak end to end, beam 1 == greedy, data checks, learning."""

import lightning as L
import pytest
import torch

from attnlab.lightning_modules.attention import all_codes, parse_sites
from attnlab.lightning_modules.labels import PAD
from attnlab.lightning_modules.transformer import Transformer, beam_search, greedy_decode
from attnlab.pipeline.config.errors import ConfigError
from attnlab.pipeline.config.train import build_train_config
from attnlab.pipeline.data.tiny import make_tiny_translation
from attnlab.pipeline.data.translation import TranslationDataModule
from attnlab.pipeline.tasks.registry import TASKS
from attnlab.pipeline.training.run import run_training

SELF_SPECS = [*all_codes(), "w/o", "deform", "dynamic", "0010+deform", "0010+dynamic"]
VOCAB = 40


def _model(sites, seed=0):
    torch.manual_seed(seed)
    return Transformer(
        VOCAB, sites, encoder_layers=1, decoder_layers=2, d_model=32, heads=4, ffn=64, dropout=0.0
    )


def test_site_grammar():
    assert parse_sites("0010") == {"enc_self": "0010", "dec_self": "0010", "enc_dec": "1000"}
    assert parse_sites("enc_self=deform, dec_self=w/o, enc_dec=1100")["dec_self"] == "w/o"
    with pytest.raises(ValueError, match="cannot be 'w/o'"):
        parse_sites("enc_dec=w/o")
    with pytest.raises(ValueError, match="takes an attention code"):
        parse_sites("enc_dec=deform")
    with pytest.raises(ValueError, match="unknown attention site 'decoder'"):
        parse_sites("decoder=1111")
    with pytest.raises(ConfigError, match="cannot be 'w/o'"):
        build_train_config({"task": "translation", "attention": "enc_self=1111,enc_dec=w/o"})


@pytest.mark.parametrize("spec", SELF_SPECS)
def test_every_self_site_spec_trains_a_step_and_never_leaks_the_future(spec):
    model = _model({"enc_self": spec, "dec_self": spec, "enc_dec": "1000"})
    for p in model.parameters():  # non-zero offsets and gammas so every path really mixes positions
        if p.dim() > 0:
            torch.nn.init.normal_(p, std=0.2)
    src = torch.randint(4, VOCAB, (2, 7))
    tgt = torch.randint(4, VOCAB, (2, 9))
    logits = model(src, tgt)
    logits.logsumexp(-1).mean().backward()
    assert torch.isfinite(logits).all()
    model.eval()
    with torch.no_grad():
        changed = tgt.clone()
        changed[:, 5:] = torch.randint(4, VOCAB, (2, 4))
        a, b = model(src, tgt), model(src, changed)
    assert torch.equal(a[:, :5], b[:, :5]), f"{spec}: decoder output before t=5 depends on later tokens"


@pytest.mark.parametrize("code", all_codes())
def test_every_code_at_encoder_decoder_attention(code):
    model = _model({"enc_self": "1000", "dec_self": "1000", "enc_dec": code})
    out = model(torch.randint(4, VOCAB, (2, 6)), torch.randint(4, VOCAB, (2, 5)))
    assert out.shape == (2, 5, VOCAB)


def test_beam_one_equals_greedy():
    model = _model({"enc_self": "1111", "dec_self": "0010", "enc_dec": "1000"}).eval()
    src = torch.randint(4, VOCAB, (3, 6))
    src[2, 4:] = PAD
    assert beam_search(model, src, beam=1, max_extra=8) == greedy_decode(model, src, max_extra=8)


def test_mismatched_files_and_filter_counts(tmp_path):
    root = make_tiny_translation(tmp_path / "corpus")
    lines = (root / "train.de").read_text().splitlines()
    (root / "train.de").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(ConfigError, match="has 1200 lines but train.de has 1199"):
        TranslationDataModule(root, tmp_path / "vocab")
    en = (root / "train.en").read_text().splitlines()
    (root / "train.de").write_text("\n".join(["", *lines[1:-1], " ".join(["tok"] * 200)]) + "\n")
    dm = TranslationDataModule(root, tmp_path / "vocab", vocab_size=120, max_len=40)
    dm.setup()
    assert len(en) == 1200 and dm.filtered["train_empty"] == 1 and dm.filtered["train_too_long"] == 1
    assert dm.filtered["train_kept"] == 1198 and (tmp_path / "vocab" / "spm.model").is_file()


def _bleu_untrained(cfg):
    L.seed_everything(cfg.seed)
    dm = TASKS["translation"].make_data(cfg, cfg.data.path)
    module = TASKS["translation"].make_module(cfg, dm)
    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    return trainer.validate(module, datamodule=dm, verbose=False)[0]["val/bleu"]


@pytest.mark.slow
def test_tiny_corpus_learns(workdir):
    data = make_tiny_translation(workdir / "corpus")
    cfg = build_train_config(
        {
            "task": "translation",
            "attention": "enc_self=0010,dec_self=1000",
            "max_epochs": 15,
            "data": {"path": str(data)},
            "out_dir": str(workdir / "runs"),
        },
        preset="tiny",
    )
    before = _bleu_untrained(cfg)
    result = run_training(cfg, progress_bar=False)
    print(f"BLEU untrained {before:.2f} -> trained {result['metrics']['val/bleu']:.2f}")
    assert result["metrics"]["val/bleu"] > before + 5
    assert result["efficiency"]["attention_flops"] > 0 and result["efficiency"]["items_per_second"] > 0


def test_train_cli_tracks_bleu_signature_and_filter_counts(workdir):
    from mlflow.tracking import MlflowClient

    from attnlab.cli import main

    assert (
        main(
            [
                "train",
                "--task",
                "translation",
                "--attention",
                "enc_self=deform,dec_self=dynamic",
                "--max-epochs",
                "1",
                "--no-progress",
                "--experiment",
                "tr",
            ]
        )
        == 0
    )
    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    run = client.search_runs([client.get_experiment_by_name("tr").experiment_id])[0]
    assert run.data.params["attention"] == "enc_self=deform,dec_self=dynamic,enc_dec=1000"
    assert run.data.params["bleu_signature"].startswith("nrefs:1")
    assert run.data.params["data.filtered.train_kept"] == "1200"
    assert "val/bleu" in run.data.metrics and "val/chrf" in run.data.metrics
    assert run.data.metrics["cost/items_per_second"] > 0  # target tokens per second
    assert (workdir / "attnlab_runs" / "vocab").is_dir()  # the vocabulary is saved beside the runs


@pytest.mark.parametrize("dec_self", ["1111", "0010", "w/o", "0101"])
def test_incremental_decoding_matches_full_recompute(dec_self):
    model = _model({"enc_self": "1000", "dec_self": dec_self, "enc_dec": "1100"}, seed=3).eval()
    assert model.incremental
    src = torch.randint(4, VOCAB, (3, 6))
    src[1, 4:] = PAD
    tgt = torch.randint(4, VOCAB, (3, 7))
    with torch.no_grad():
        memory, mem_pad = model.encode(src)
        full = model.decode(tgt, memory, mem_pad)
        cache = [None] * len(model.decoder)
        for t in range(tgt.shape[1]):
            step = model.decode_last(tgt[:, : t + 1], memory, mem_pad, cache)
            torch.testing.assert_close(step, full[:, t], rtol=1e-4, atol=1e-4)


def test_convolution_sites_decode_by_full_recompute():
    model = _model({"enc_self": "1000", "dec_self": "dynamic", "enc_dec": "1000"}).eval()
    assert not model.incremental
    assert len(greedy_decode(model, torch.randint(4, VOCAB, (2, 5)), 4)) == 2


@pytest.mark.parametrize(
    "sites",
    [{"enc_self": "1000", "dec_self": "1000", "enc_dec": c} for c in all_codes()]
    + [{"enc_self": s, "dec_self": s, "enc_dec": "1000"} for s in SELF_SPECS],
)
def test_every_parameter_gets_a_gradient_so_ddp_needs_no_unused_parameter_search(sites):
    """DDP (every sweep trial, `--devices N`) refuses parameters without gradients: a norm in front of
    `w/o`, or before encoder-decoder attention that never reads its query (no E1, no E2), must not exist."""
    model = _model(sites)
    model(torch.randint(4, VOCAB, (2, 7)), torch.randint(4, VOCAB, (2, 5))).sum().backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []
