#!/usr/bin/env python3
"""Epoch time of SASRec in PyTorch on the CPU, for comparison with `attnlab train` on the same
machine. Not part of the build or tests (PyTorch is not a dependency). On Debian 12:
  sudo apt-get install python3-torch
  python3 experiments/pytorch/sasrec.py --data ../shared/data/ml-1m.txt --threads 2 --epochs 2

The model follows the original SASRec code (and attnlab's default "sasrec" block layout): item
embedding x sqrt(d) + learned positions, dropout, then per block: q = LN(x), x = q + MHA(q, x, x)
(causal + key padding, no output projection), y = LN(x), x = y + FFN(y), padding zeroed; final
LN; BCE with one uniform negative per position; Adam(lr 1e-3, betas 0.9/0.98); batch 128 users.
Attention is the explicit softmax (scores, mask, softmax, dropout, weighted sum), as
pmixer/SASRec.pytorch and the official code compute it.
"""
import argparse
import random
import time

import torch
import torch.nn as nn


class Block(nn.Module):
    def __init__(self, d, p):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d, eps=1e-8), nn.LayerNorm(d, eps=1e-8)
        self.q, self.k, self.v = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.fc1, self.fc2 = nn.Linear(d, d), nn.Linear(d, d)
        self.drop = nn.Dropout(p)

    def forward(self, x, keep, causal):
        q_in = self.ln1(x)
        q, k, v = self.q(q_in), self.k(x), self.v(x)
        scores = q @ k.transpose(1, 2) / q.shape[-1] ** 0.5
        blocked = causal | ~keep[:, None, :]
        scores = scores.masked_fill(blocked, float("-inf"))
        w = torch.nan_to_num(torch.softmax(scores, -1))  # fully padded rows -> 0
        x = q_in + self.drop(self.drop(w) @ v)
        y = self.ln2(x)
        x = y + self.drop(self.fc2(self.drop(torch.relu(self.fc1(y)))))
        return x * keep[..., None]


class SASRec(nn.Module):
    def __init__(self, items, maxlen, d, blocks, p):
        super().__init__()
        self.items = nn.Embedding(items + 1, d, padding_idx=0)
        self.pos = nn.Embedding(maxlen, d)
        self.drop = nn.Dropout(p)
        self.blocks = nn.ModuleList([Block(d, p) for _ in range(blocks)])
        self.ln = nn.LayerNorm(d, eps=1e-8)
        self.d = d

    def forward(self, seq):
        keep = seq > 0
        x = self.items(seq) * self.d ** 0.5 + self.pos.weight[None, : seq.shape[1]]
        x = self.drop(x) * keep[..., None]
        n = seq.shape[1]
        causal = torch.ones(n, n, dtype=torch.bool).triu(1)[None]
        for b in self.blocks:
            x = b(x, keep, causal)
        return self.ln(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--maxlen", type=int, default=200)
    ap.add_argument("--dim", type=int, default=50)
    ap.add_argument("--blocks", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    random.seed(0)
    seqs = {}
    items = 0
    for line in open(a.data):
        u, i = map(int, line.split())
        seqs.setdefault(u, []).append(i)
        items = max(items, i)
    train = [s[:-2] for s in seqs.values() if len(s) >= 3]
    users = [s for s in train if len(s) >= 2]
    model = SASRec(items, a.maxlen, a.dim, a.blocks, 0.2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.98))
    bce = nn.BCEWithLogitsLoss(reduction="none")
    for epoch in range(a.epochs):
        random.shuffle(users)
        t0 = time.perf_counter()
        for start in range(0, len(users), a.batch):
            chunk = users[start : start + a.batch]
            inp = torch.zeros(len(chunk), a.maxlen, dtype=torch.long)
            pos = torch.zeros_like(inp)
            neg = torch.zeros_like(inp)
            for r, s in enumerate(chunk):
                x, y = s[:-1][-a.maxlen :], s[1:][-a.maxlen :]
                seen = set(s)
                inp[r, a.maxlen - len(x) :] = torch.tensor(x)
                pos[r, a.maxlen - len(y) :] = torch.tensor(y)
                negs = []
                for _ in y:
                    t = random.randint(1, items)
                    while t in seen:
                        t = random.randint(1, items)
                    negs.append(t)
                neg[r, a.maxlen - len(y) :] = torch.tensor(negs)
            h = model(inp)
            lp = (h * model.items(pos)).sum(-1)
            ln = (h * model.items(neg)).sum(-1)
            m = (pos > 0).float()
            loss = ((bce(lp, torch.ones_like(lp)) + bce(ln, torch.zeros_like(ln))) * m).sum() / m.sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
        print(f"epoch {epoch + 1}: {time.perf_counter() - t0:.2f} s, loss {loss.item():.4f}", flush=True)


if __name__ == "__main__":
    main()
