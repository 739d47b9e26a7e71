"""The output layer and its loss in chunks of rows: y = softmax(W h + b), ℓ = −log y_target, mean over the rows.

Written out whole, a training step holds the logits W h + b (N × vocabulary), their log-softmax and the
gradient of both: at N = 700 targets (batch 20 × τ 35) and 50k words, 140 MB each; lmcore.nn.chunked_loss
makes them a chunk of rows at a time instead. Logits of one chunk or less (vocabularies up to ~10k words at
batch 20 × τ 35) take the plain path: chunking would save nothing there, and a different summation order, which
SGD at lr 20 amplifies from 1e-7 to 1e-2 in 20 steps, would part lmcore's run from a plain loop's. Training on the
CPU in float32 where lmcore's C++ is built (`in_place`) takes the chunked path at any size instead, each chunk's
softmax and gradient made in one pass of C++ over its logits: faster and smaller, equal to rounding.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from lmcore.nn import chunked_loss
from lmcore.nn.adaptive_output import AdaptiveOutput
from lmcore.nn.architectures import ModelConfig
from lmcore.nn.chunked_loss import output_loss


def make_output(cfg: ModelConfig, in_features: int) -> nn.Module:
    """The output layer a config asks for, reading `in_features` numbers: W and b2 as an nn.Linear (initialised by
    the model, after its embedding, as it always was), or an adaptive softmax (initialised here)."""
    if cfg.output == "adaptive":
        return AdaptiveOutput(in_features, cfg.vocab_size, bias=cfg.bias)
    return nn.Linear(in_features, cfg.vocab_size, bias=cfg.bias)


def init_softmax_weights(decoder: nn.Module) -> None:
    """W uniform in ±0.1, b2 zero (the word-language-model recipe); an adaptive softmax has set its own."""
    if isinstance(decoder, nn.Linear):
        nn.init.uniform_(decoder.weight, -0.1, 0.1)
        if decoder.bias is not None:
            nn.init.zeros_(decoder.bias)


def output_layer(decoder: nn.Module, out: Tensor, targets: Tensor | None, need_logits: bool = True,
                 in_place: bool = False):
    """(logits (T, B, vocab) or None, mean cross-entropy or None) of the output layer y = softmax(W h + b2).

    need_logits=False: the loss alone, in chunks when the whole logits would be more than one chunk; below that
    the whole path, the very operations of a plain PyTorch loop (whose run lmcore's matches bit for bit), unless
    in_place (training on the CPU in float32, where lmcore's C++ is built: see training.device.native_loss_pays):
    then the softmax and its gradient in one pass of C++ (chunked_loss.output_loss), equal to rounding.
    An adaptive softmax: its log-probabilities stand for the logits; its loss computes each row's cluster only."""
    if isinstance(decoder, AdaptiveOutput):
        if need_logits:  # the loss read off the log-probabilities already made, not a second pass through the head
            logp = decoder(out)
            return logp, None if targets is None else F.nll_loss(logp.view(-1, logp.size(-1)), targets.reshape(-1))
        return None, None if targets is None else decoder.loss(out.reshape(-1, out.size(-1)), targets.reshape(-1),
                                                               in_place)
    if targets is not None and not need_logits:
        h, y = out.reshape(-1, out.size(-1)), targets.reshape(-1)
        if in_place or h.size(0) * decoder.out_features > chunked_loss.CHUNK_ELEMENTS:
            return None, output_loss(h, decoder.weight, decoder.bias, y, in_place=in_place)
        return None, F.cross_entropy(decoder(h), y)
    logits = decoder(out)
    loss = None if targets is None else F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))
    return logits, loss
