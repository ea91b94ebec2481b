"""An encoder-decoder Transformer whose three attention sites take their own spec.

Pre-norm layers; each sublayer is x + dropout(site(norm(x))). Sites come from the factory with
dim=1: encoder self-attention, causal decoder self-attention and encoder-decoder attention.
Sinusoidal absolute positions at the input; embeddings shared by encoder, decoder and output.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .attention import build_attention, options_for
from .labels import BOS, EOS, PAD


def sinusoid(length: int, dim: int, device) -> torch.Tensor:
    pos = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim, device=device)
    table[:, 0::2], table[:, 1::2] = torch.sin(pos * freq), torch.cos(pos * freq)
    return table


def _site(spec: str, d: int, heads: int, options: dict, causal: bool | None = None) -> nn.Module:
    shared = {"num_heads": heads, **options}
    if causal is not None:
        shared["causal"] = causal
    return build_attention(spec, d, dim=1, **options_for(spec, 1, shared))


def pre_norm(d: int, attn: nn.Module, part: str = "reads_input") -> nn.Module:
    """A LayerNorm in front of `attn`, or nothing where `attn` never reads what it would feed.

    A norm whose output no loss depends on gets no gradient, which DDP refuses: `w/o` reads
    nothing, and encoder-decoder attention without E1 and E2 never reads its query.
    """
    return nn.LayerNorm(d) if getattr(attn, part, True) else nn.Identity()


class FeedForward(nn.Sequential):
    def __init__(self, d: int, ffn: int, dropout: float):
        super().__init__(nn.Linear(d, ffn), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ffn, d))


class EncoderLayer(nn.Module):
    def __init__(self, spec: str, d: int, heads: int, ffn: int, dropout: float, options: dict):
        super().__init__()
        self.self_attn = _site(spec, d, heads, options, causal=False)
        self.ffn, self.norm1, self.norm2 = (
            FeedForward(d, ffn, dropout),
            pre_norm(d, self.self_attn),
            nn.LayerNorm(d),
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x, pad):
        x = x + self.drop(self.self_attn(self.norm1(x), key_padding_mask=pad))
        return x + self.drop(self.ffn(self.norm2(x)))


class DecoderLayer(nn.Module):
    def __init__(
        self, self_spec: str, cross_spec: str, d: int, heads: int, ffn: int, dropout: float, options: dict
    ):
        super().__init__()
        self.self_attn = _site(self_spec, d, heads, options, causal=True)
        self.cross_attn = _site(cross_spec, d, heads, options)
        self.ffn = FeedForward(d, ffn, dropout)
        # The pre-norm before encoder-decoder attention feeds only its query.
        self.norms = nn.ModuleList(
            [pre_norm(d, self.self_attn), pre_norm(d, self.cross_attn, "reads_query"), nn.LayerNorm(d)]
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, y, tgt_pad, memory, mem_pad):
        y = y + self.drop(self.self_attn(self.norms[0](y), key_padding_mask=tgt_pad))
        y = y + self.drop(self.cross_attn(self.norms[1](y), memory=memory, key_padding_mask=mem_pad))
        return y + self.drop(self.ffn(self.norms[2](y)))


class Transformer(nn.Module):
    def __init__(
        self,
        vocab: int,
        sites: dict[str, str],
        encoder_layers=6,
        decoder_layers=6,
        d_model=512,
        heads=8,
        ffn=2048,
        dropout=0.1,
        attention_options: dict | None = None,
    ):
        super().__init__()
        options = dict(attention_options or {})
        self.d_model = d_model
        self.embed = nn.Embedding(vocab, d_model, padding_idx=PAD)
        nn.init.normal_(self.embed.weight, std=d_model**-0.5)
        with torch.no_grad():
            self.embed.weight[PAD].zero_()
        self.encoder = nn.ModuleList(
            EncoderLayer(sites["enc_self"], d_model, heads, ffn, dropout, options)
            for _ in range(encoder_layers)
        )
        self.decoder = nn.ModuleList(
            DecoderLayer(sites["dec_self"], sites["enc_dec"], d_model, heads, ffn, dropout, options)
            for _ in range(decoder_layers)
        )
        self.enc_norm, self.dec_norm, self.drop = (
            nn.LayerNorm(d_model),
            nn.LayerNorm(d_model),
            nn.Dropout(dropout),
        )

    def _embed(self, tokens):
        x = self.embed(tokens) * math.sqrt(self.d_model)
        return self.drop(x + sinusoid(tokens.shape[1], self.d_model, tokens.device))

    def encode(self, src):
        pad = src.eq(PAD)
        x = self._embed(src)
        for layer in self.encoder:
            x = layer(x, pad)
        return self.enc_norm(x), pad

    def decode(self, tgt_in, memory, mem_pad):
        pad = tgt_in.eq(PAD)
        y = self._embed(tgt_in)
        for layer in self.decoder:
            y = layer(y, pad, memory, mem_pad)
        return self.dec_norm(y) @ self.embed.weight.t()  # shared output projection

    def forward(self, src, tgt_in):
        memory, mem_pad = self.encode(src)
        return self.decode(tgt_in, memory, mem_pad)

    @property
    def incremental(self) -> bool:
        """Whether every decoder self-attention site can attend from one new position to a cache."""
        return all(getattr(layer.self_attn, "incremental", False) for layer in self.decoder)

    def decode_last(self, tokens, memory, mem_pad, cache: list | None):
        """Logits of the next token after `tokens` (N, t). With a cache (a list, one entry per
        layer, of the normalised self-attention inputs so far) only the last position is computed."""
        if cache is None:
            return self.decode(tokens, memory, mem_pad)[:, -1]
        t = tokens.shape[1] - 1
        y = (
            self.embed(tokens[:, -1:]) * math.sqrt(self.d_model)
            + sinusoid(t + 1, self.d_model, tokens.device)[t]
        )
        for i, layer in enumerate(self.decoder):
            h = layer.norms[0](y)
            cache[i] = h if cache[i] is None else torch.cat([cache[i], h], 1)
            y = y + layer.self_attn(h, memory=cache[i], query_offset=t)
            y = y + layer.cross_attn(
                layer.norms[1](y), memory=memory, key_padding_mask=mem_pad, query_offset=t
            )
            y = y + layer.ffn(layer.norms[2](y))
        return (self.dec_norm(y) @ self.embed.weight.t())[:, -1]


def _new_cache(model: Transformer, incremental: bool | None):
    use = model.incremental if incremental is None else incremental
    return [None] * len(model.decoder) if use else None


@torch.no_grad()
def greedy_decode(
    model: Transformer, src: torch.Tensor, max_extra: int = 50, incremental: bool | None = None
) -> list[list[int]]:
    """Greedy decoding; incremental (cached) where every decoder self-attention site allows it."""
    memory, mem_pad = model.encode(src)
    n = src.shape[0]
    cache = _new_cache(model, incremental)
    tokens = torch.full((n, 1), BOS, dtype=torch.long, device=src.device)
    done = torch.zeros(n, dtype=torch.bool, device=src.device)
    for _ in range(src.shape[1] + max_extra):
        nxt = model.decode_last(tokens, memory, mem_pad, cache).argmax(-1)
        nxt = torch.where(done, torch.full_like(nxt, PAD), nxt)
        tokens = torch.cat([tokens, nxt[:, None]], 1)
        done |= nxt.eq(EOS)
        if done.all():
            break
    return [_strip(t) for t in tokens[:, 1:].tolist()]


def _strip(ids: list[int]) -> list[int]:
    out = []
    for i in ids:
        if i in (EOS, PAD):
            break
        out.append(i)
    return out


@torch.no_grad()
def beam_search(
    model: Transformer,
    src: torch.Tensor,
    beam: int = 4,
    alpha: float = 0.6,
    max_extra: int = 50,
    incremental: bool | None = None,
) -> list[list[int]]:
    """Batched beam search; finished hypotheses ranked by log-prob / ((5 + len) / 6) ** alpha (GNMT)."""
    cache = _new_cache(model, incremental)
    memory, mem_pad = model.encode(src)
    n, device = src.shape[0], src.device
    memory, mem_pad = memory.repeat_interleave(beam, 0), mem_pad.repeat_interleave(beam, 0)
    tokens = torch.full((n * beam, 1), BOS, dtype=torch.long, device=device)
    scores = torch.full((n, beam), float("-inf"), device=device)
    scores[:, 0] = 0.0
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(n)]
    for step in range(src.shape[1] + max_extra):
        logp = model.decode_last(tokens, memory, mem_pad, cache).float().log_softmax(-1)
        vocab = logp.shape[-1]
        cand = (scores[:, :, None] + logp.view(n, beam, vocab)).view(n, -1)
        top, idx = cand.topk(2 * beam, dim=-1)
        origin, word = idx // vocab, idx % vocab
        new_scores = torch.full((n, beam), float("-inf"), device=device)
        new_tokens = tokens.new_full((n, beam, tokens.shape[1] + 1), PAD)
        reorder = [b * beam for b in range(n) for _ in range(beam)]  # which old row each new row extends
        for b in range(n):
            kept = 0
            for score, o, w in zip(top[b].tolist(), origin[b].tolist(), word[b].tolist()):
                if score == float("-inf"):
                    break
                seq = tokens[b * beam + o].tolist()[1:] + [w]
                if w == EOS:
                    if len(finished[b]) < beam:
                        finished[b].append((score / ((5 + len(seq)) / 6) ** alpha, seq[:-1]))
                    continue
                new_scores[b, kept] = score
                new_tokens[b, kept] = torch.tensor([BOS] + seq, device=device)
                reorder[b * beam + kept] = b * beam + o
                kept += 1
                if kept == beam:
                    break
        tokens, scores = new_tokens.view(n * beam, -1), new_scores
        if cache is not None:
            index = torch.tensor(reorder, device=device)
            cache = [c.index_select(0, index) for c in cache]
        best_alive = scores.max(-1).values
        if all(
            len(finished[b]) >= beam
            and max(s for s, _ in finished[b]) >= best_alive[b].item() / ((5 + step + 2) / 6) ** alpha
            for b in range(n)
        ):
            break
    out = []
    for b in range(n):
        if not finished[b]:
            finished[b].append((scores[b, 0].item(), tokens[b * beam, 1:].tolist()))
        out.append(max(finished[b], key=lambda p: p[0])[1])
    return out
