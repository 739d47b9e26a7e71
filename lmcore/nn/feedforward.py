"""The feedforward neural language model of the lecture before (Bengio et al. 2003), in the lecture's letters:

    x_i = [e(w_{i−n+1}); …; e(w_{i−1})]        the n − 1 previous words' embeddings, concatenated
    h_i = tanh(V x_i + b1)                     one hidden layer
    y_i = softmax(W h_i + D x_i + b2)          D: Bengio's optional direct connections

It learns n-gram probabilities with shared parameters, but its window is fixed: w_{i−n} and everything before
it cannot change y_i. It speaks the recurrent models' interface (lmcore.nn.model.RNNLM) so that training, the
store and every page that only reads probabilities take it as they are: its "state" is the n − 1 token ids
before the chunk (−1 where there is no word yet, read as a zero embedding), carried across chunks as an RNN
carries h, and `features` returns [h; x] when D is on, so that `decoder` alone (W and D side by side) gives
the logits.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from lmcore.nn.architectures import ModelConfig
from lmcore.nn.dropout import Dropout
from lmcore.nn.output_loss import init_softmax_weights, make_output, output_layer

NO_WORD = -1  # a window position before the text starts: its embedding is zero


class FeedforwardLM(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        cfg.validate()
        if cfg.arch != "ffnn":
            raise ValueError(f"FeedforwardLM builds the ffnn architecture, not {cfg.arch!r}")
        self.cfg = cfg
        self.context = cfg.window - 1                                    # n − 1 words read
        self.encoder = nn.Embedding(cfg.vocab_size, cfg.emb)
        self.hidden_layer = nn.Linear(self.context * cfg.emb, cfg.hidden, bias=cfg.bias)  # V, b1
        out_in = cfg.hidden + (self.context * cfg.emb if cfg.direct else 0)
        self.decoder = make_output(cfg, out_in)  # [W D], b2 (or an adaptive softmax reading [h; x])
        self.drop = Dropout(cfg.dropout)
        self.compile = "off"  # a setting of the recurrent cells; kept so the trainer treats every model alike
        self.native_loss = False  # train sets it (training.device.native_loss_pays): the C++ softmax in training
        nn.init.uniform_(self.encoder.weight, -0.1, 0.1)
        init_softmax_weights(self.decoder)
        if cfg.tied:
            self.decoder.weight = self.encoder.weight

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def init_hidden(self, batch: int, device=None) -> Tensor:
        """The words before the text: none yet, (n − 1, B) of NO_WORD."""
        return torch.full((self.context, batch), NO_WORD, dtype=torch.long,
                          device=device or self.encoder.weight.device)

    def embed(self, ids: Tensor) -> Tensor:
        """e(w) for every id, zero where there is no word."""
        known = ids >= 0
        return self.encoder(ids.clamp(min=0)) * known.unsqueeze(-1).to(self.encoder.weight.dtype)

    def windows(self, x: Tensor, hidden: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """x_i for every step: ((T, B, (n − 1)·E), oldest word first; the last n − 1 ids, the next chunk's state)."""
        if hidden is None:
            hidden = self.init_hidden(x.size(1), x.device)
        ids = torch.cat([hidden, x], dim=0)                              # (n − 1 + T, B)
        emb = self.drop(self.embed(ids))                                 # (n − 1 + T, B, E)
        T, B, E = x.size(0), x.size(1), emb.size(-1)
        stacked = emb.unfold(0, self.context, 1)[1:]                     # (T, B, E, n − 1): step i ends at word i
        return stacked.permute(0, 1, 3, 2).reshape(T, B, self.context * E), ids[-self.context:]

    def features(self, x: Tensor, hidden: Tensor | None = None, use_cells: bool = False):
        """What the output layer reads: (h, or [h; x] with direct connections, (T, B, ·); next state)."""
        xs, hidden = self.windows(x, hidden)
        h = torch.tanh(self.hidden_layer(xs))
        return (torch.cat([h, xs], dim=-1) if self.cfg.direct else h), hidden

    def forward(self, x: Tensor, hidden: Tensor | None = None, targets: Tensor | None = None, use_cells: bool = False,
                need_logits: bool = True):
        """x: (T, B) token ids. Returns (logits (T, B, vocab) or None, loss or None, the next chunk's state), as
        RNNLM.forward does."""
        out, hidden = self.features(x, hidden)
        return (*output_layer(self.decoder, self.drop(out), targets, need_logits, self.training and self.native_loss),
                hidden)
