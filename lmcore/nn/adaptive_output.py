"""An adaptive softmax output layer (Grave et al. 2017, "Efficient softmax approximation for GPUs").

The vocabulary is sorted by frequency (lmcore.corpus.vocab), so it splits into a head of the most frequent words
and tail clusters of rarer ones. The head's softmax covers its words and one entry per cluster; a word in a
cluster has p(w | h) = p(cluster | h) · p(w | cluster, h), the second softmax over that cluster's words only, read
through a smaller projection of h (H / 4 per cluster further out: rare words get fewer numbers). This is still an
exact, normalised distribution over every word, so perplexities compare with a full softmax's; what it saves is
work: a training row computes the head and only the one cluster its target is in, ~2,000 + a few columns instead
of the whole vocabulary. Sizes: lmcore.nn.architectures.adaptive_clusters.

`forward(h)` returns log p(w | h) for every word, (…, vocab): what the rest of lmcore reads as logits (softmax and
log-softmax of log-probabilities give them back unchanged). `loss(h, targets)` is the training path.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lmcore.nn.architectures import adaptive_clusters
from lmcore.nn.chunked_loss import output_loss


class AdaptiveOutput(nn.Module):
    def __init__(self, in_features: int, vocab: int, bias: bool = True):
        super().__init__()
        self.in_features, self.out_features = in_features, vocab
        self.spans = adaptive_clusters(in_features, vocab)  # (first word, last + 1, projection size) per cluster
        self.head_words = self.spans[0][0]
        self.head = nn.Linear(in_features, self.head_words + len(self.spans), bias=bias)
        self.tails = nn.ModuleList(  # per cluster: h's projection, then the cluster's words
            nn.Sequential(nn.Linear(in_features, d, bias=False), nn.Linear(d, end - start, bias=bias))
            for start, end, d in self.spans)
        for p in self.parameters():  # as the full softmax's W (lmcore.nn.model): uniform ±0.1, biases 0
            if p.dim() > 1:
                nn.init.uniform_(p, -0.1, 0.1)
            else:
                nn.init.zeros_(p)

    def clusters(self):
        """(first word, last word + 1, the head's entry for the cluster, its module) for each tail cluster."""
        return [(start, end, self.head_words + i, tail)
                for i, ((start, end, _), tail) in enumerate(zip(self.spans, self.tails))]

    def forward(self, h: Tensor) -> Tensor:
        """log p(w | h) for every word w: (…, vocab), float32."""
        head = F.log_softmax(self.head(h).float(), dim=-1)
        parts = [head[..., :self.head_words]]
        for _, _, entry, tail in self.clusters():
            parts.append(head[..., entry:entry + 1] + F.log_softmax(tail(h).float(), dim=-1))
        return torch.cat(parts, dim=-1)

    def loss(self, h: Tensor, targets: Tensor, in_place: bool = False) -> Tensor:
        """Mean −log p(target | h) over the rows of h (N, H); each row computes the head and its target's cluster.
        The head's target is the word itself or its cluster's entry: one cross-entropy over all rows (indexing the
        head's log-softmax per cluster had made a zero gradient of the head's size for each, a third of the step);
        a cluster's own softmax through chunked_loss (50k words: 92 rows × 40k, fill, cast and log-softmax of 15 MB
        each, had cost as much as the head). in_place: every softmax, the head's too, through lmcore's C++ (see
        chunked_loss.output_loss)."""
        head_targets = targets.clone()
        parts = []
        for start, end, entry, tail in self.clusters():
            rows = ((targets >= start) & (targets < end)).nonzero()[:, 0]
            if rows.numel():
                head_targets[rows] = entry
                projection, words = tail  # the cluster's softmax a chunk at a time, its gradient made in place
                parts.append(output_loss(projection(h[rows]), words.weight, words.bias, targets[rows] - start,
                                         in_place=in_place) * rows.numel())
        if in_place:  # the head's mean as it comes: its backward then hands over its gradients without a copy
            return output_loss(h, self.head.weight, self.head.bias, head_targets, in_place=True) + sum(parts) / targets.numel()
        total = F.cross_entropy(self.head(h).float(), head_targets, reduction="sum")
        return (total + sum(parts)) / targets.numel()
