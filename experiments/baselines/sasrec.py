#!/usr/bin/python3
"""SASRec training time in PyTorch on the CPU (ML-1M), for comparison with `attnlab train`.

  python3 experiments/baselines/sasrec.py --data /work/shared/data/ml-1m.txt --threads 2
  python3 experiments/baselines/sasrec.py --data ... --threads 2 --batches 20   # extrapolate
  python3 experiments/baselines/sasrec.py --data ... --attention mha

The model is attnlab's default `train` model (the original SASRec layout): item embedding x
sqrt(d) + learned positions, dropout 0.2, padding zeroed; per block: q = LN(x),
x = q + dropout(attention(q, x, x)) with causal + key-padding masking, dropout on the attention
weights and no output projection, y = LN(x), x = y + dropout(W2 dropout(relu(W1 y))), padding
zeroed; final LN; logits = h . e_item; BCE with one uniform negative per position (not in the
user's training items); Adam lr 1e-3, betas (0.9, 0.98); batch 128 users, maxlen 200, width 50,
2 blocks, 1 head. Data: the SASRec leave-last-two split, train = all but the last two items of
each user; input = the train sequence without its last item, target = shifted by one, both the
last 200, left padded.
--attention explicit (default): scores = baddbmm(bias, q, k^T, alpha=1/sqrt(d)) with one
additive [B, L, L] bias per batch (causal and key padding at -1e9, as the official SASRec uses a
large finite negative: fully padded rows stay finite and are zeroed afterwards), softmax,
dropout, bmm. --attention mha: torch.nn.MultiheadAttention (batch_first, the same float mask;
it adds an output projection, which attnlab's default model does not have).
Batches are built with tensor ops from padded per-user tensors made once (negatives: sampled in
one call, collisions with the user's items resampled), so the Python side is not the
bottleneck. Timing: whole epochs (--epochs, default 1; the median over epochs), or with
--batches N the first N batches after --warmup untimed ones (median per batch; the epoch
estimate is the mean batch time x batches per epoch, marked extrapolated). Evaluation is not
timed (attnlab train runs with --eval-every larger than --epochs for the comparison).
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fairbench  # noqa: E402

NEG = -1e9


def build_model(items, maxlen, d, blocks, p, attention):
    import torch
    import torch.nn as nn

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(d, eps=1e-8), nn.LayerNorm(d, eps=1e-8)
            if attention == "mha":
                self.mha = nn.MultiheadAttention(d, 1, dropout=p, batch_first=True)
            else:
                self.q, self.k, self.v = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
            self.fc1, self.fc2 = nn.Linear(d, d), nn.Linear(d, d)
            self.drop = nn.Dropout(p)

        def attend(self, q_in, x, bias):
            if attention == "mha":
                return self.mha(q_in, x, x, attn_mask=bias, need_weights=False)[0]
            q, k, v = self.q(q_in), self.k(x), self.v(x)
            w = torch.baddbmm(bias, q, k.transpose(1, 2), alpha=d ** -0.5).softmax(-1)
            return torch.bmm(self.drop(w), v)

        def forward(self, x, keep, bias):
            q_in = self.ln1(x)
            x = q_in + self.drop(self.attend(q_in, x, bias))
            y = self.ln2(x)
            x = y + self.drop(self.fc2(self.drop(torch.relu(self.fc1(y)))))
            return x * keep

    class SASRec(nn.Module):
        def __init__(self):
            super().__init__()
            self.items = nn.Embedding(items + 1, d, padding_idx=0)
            self.pos = nn.Embedding(maxlen, d)
            self.drop = nn.Dropout(p)
            self.blocks = nn.ModuleList([Block() for _ in range(blocks)])
            self.ln = nn.LayerNorm(d, eps=1e-8)
            causal = torch.zeros(maxlen, maxlen).masked_fill(
                torch.ones(maxlen, maxlen, dtype=torch.bool).triu(1), NEG)
            self.register_buffer("causal", causal)

        def forward(self, seq):
            keep_b = seq > 0
            keep = keep_b[..., None].float()
            bias = self.causal[None] + torch.zeros(seq.shape, device=seq.device).masked_fill(
                ~keep_b, NEG)[:, None, :]
            x = self.items(seq) * d ** 0.5 + self.pos.weight[None]
            x = self.drop(x) * keep
            if attention == "mha":  # [B * heads, L, L]
                bias = bias.contiguous()
            for b in self.blocks:
                x = b(x, keep, bias)
            return self.ln(x)

    return SASRec()


def load(path, maxlen):
    import torch
    seqs = {}
    items = 0
    with open(path) as f:
        for line in f:
            u, i = map(int, line.split())
            seqs.setdefault(u, []).append(i)
            items = max(items, i)
    train = [s[:-2] for s in seqs.values() if len(s) >= 3]
    train = [s for s in train if len(s) >= 2]
    inp = torch.zeros(len(train), maxlen, dtype=torch.long)
    pos = torch.zeros_like(inp)
    seen = torch.zeros(len(train), items + 1, dtype=torch.bool)
    for r, s in enumerate(train):
        x, y = s[:-1][-maxlen:], s[1:][-maxlen:]
        inp[r, maxlen - len(x):] = torch.tensor(x)
        pos[r, maxlen - len(y):] = torch.tensor(y)
        seen[r, torch.tensor(s)] = True
    return inp, pos, seen, items


def sample_negatives(rows, pos, seen, items, gen):
    import torch
    neg = torch.randint(1, items + 1, pos.shape, generator=gen)
    while True:
        bad = seen[rows[:, None], neg] & (pos > 0)
        if not bool(bad.any()):
            return neg * (pos > 0)
        neg[bad] = torch.randint(1, items + 1, (int(bad.sum()),), generator=gen)


def train_step(model, opt, inp, pos, neg):
    import torch
    import torch.nn.functional as F
    h = model(inp)
    lp = (h * model.items(pos)).sum(-1)
    ln = (h * model.items(neg)).sum(-1)
    m = (pos > 0).float()
    loss = F.binary_cross_entropy_with_logits(lp, torch.ones_like(lp), reduction="none")
    loss = loss + F.binary_cross_entropy_with_logits(ln, torch.zeros_like(ln), reduction="none")
    loss = (loss * m).sum() / m.sum()
    opt.zero_grad()
    loss.backward()
    opt.step()
    return float(loss)


def batches(n_users, batch, gen):
    import torch
    order = torch.randperm(n_users, generator=gen)
    return [order[s:s + batch] for s in range(0, n_users, batch)]


def measure(config, args, env):
    import torch
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    inp, pos, seen, items = load(args.data, args.maxlen)
    rss_before = fairbench.max_rss_mb()
    model = build_model(items, args.maxlen, args.dim, args.blocks, 0.2, args.attention)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.98))

    def step(rows):
        neg = sample_negatives(rows, pos[rows], seen, items, gen)
        return train_step(model, opt, inp[rows], pos[rows], neg)

    per_epoch = (inp.shape[0] + args.batch - 1) // args.batch
    extra = {"users": int(inp.shape[0]), "items": items, "batches_per_epoch": per_epoch}
    if args.batches > 0:
        todo = batches(inp.shape[0], args.batch, gen)
        for rows in todo[:args.warmup]:
            step(rows)
        times = []
        for rows in todo[args.warmup:args.warmup + args.batches]:
            t0 = time.perf_counter()
            extra["loss"] = step(rows)
            times.append((time.perf_counter() - t0) * 1e3)
        extra.update(unit="batch", extrapolated=True,
                     epoch_ms_extrapolated=sum(times) / len(times) * per_epoch)
        return times, rss_before, extra
    times = []
    for _ in range(args.epochs):
        t0 = time.perf_counter()
        for rows in batches(inp.shape[0], args.batch, gen):
            extra["loss"] = step(rows)
        times.append((time.perf_counter() - t0) * 1e3)
    extra.update(unit="epoch", extrapolated=False)
    return times, rss_before, extra


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    fairbench.add_args(p)
    p.set_defaults(threads=2, warmup=0)
    p.add_argument("--data", default="/work/shared/data/ml-1m.txt")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batches", type=int, default=0, help="time N batches only (extrapolate)")
    p.add_argument("--attention", choices=["explicit", "mha"], default="explicit")
    p.add_argument("--maxlen", type=int, default=200)
    p.add_argument("--dim", type=int, default=50)
    p.add_argument("--blocks", type=int, default=2)
    p.add_argument("--batch", type=int, default=128)
    args = p.parse_args()
    env = fairbench.setup(args, use_torch=True)
    config = {"data": os.path.basename(args.data), "attention": args.attention,
              "batch": args.batch, "maxlen": args.maxlen, "dim": args.dim,
              "blocks": args.blocks, "epochs": args.epochs, "batches": args.batches}
    fairbench.run("torch-sasrec-train", [config], measure, args, env)


if __name__ == "__main__":
    main()
