#!/usr/bin/env bash
# One-file GPU measurement of a fit at 1x (the shared data), for a session that is lent a GPU.
#
# Run from the repository root on the device machine (the `run` tool puts you there):
#     bash benchmarks/gpu_fit.sh            # writes everything under $OUT (or benchmarks/out/gpu)
# It needs a python with a CUDA build of torch and the project's runtime dependencies
# (PYTHON=..., default python3) and the shared data (DATA_DIR=..., default shared/data, then
# ../shared/data). Nothing is downloaded. About 3-5 minutes on one H100/H200.
#
# What it records (target: a 1x fit <= 8 s on one GPU; 26 s measured on an H200 before the
# device-side dense batches):
#   1. the default fit on cuda, dense layout (the default there), phases timed    fit_dense.json
#   2. the same with packed rows (the CPU layout) for comparison                   fit_rows.json
#   3. the same with torch.compile on the step (ANIREC_COMPILE=1, off by default)  fit_compile.json
#   4. a torch.profiler table of two training epochs (CPU + CUDA time per op)      profile.txt
#   5. the machine: nvidia-smi, torch and CUDA versions, CPU count                 machine.txt
# Paste the "summary" lines at the end into benchmarks/RESULTS.md.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=${OUT:-benchmarks/out/gpu}
mkdir -p "$OUT"
DATA_DIR=${DATA_DIR:-}
for d in shared/data ../shared/data /work/shared/data; do
    if [ -z "$DATA_DIR" ] && [ -f "$d/anime/animelist.csv" ]; then DATA_DIR=$d; fi
done
if [ -z "$DATA_DIR" ]; then echo "gpu_fit: no shared data (set DATA_DIR)" >&2; exit 2; fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

if ! "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "gpu_fit: $PY has no CUDA torch" >&2; exit 2
fi
missing=$("$PY" - <<'EOF'
import importlib.util
need = ["numpy", "pandas", "safetensors", "pydantic", "pydantic_settings", "matplotlib"]
print(" ".join(m for m in need if importlib.util.find_spec(m) is None))
EOF
)
if [ -n "$missing" ]; then echo "gpu_fit: missing python packages: $missing" >&2; exit 2; fi

{
    nvidia-smi || true
    "$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda,
              torch.cuda.get_device_name(0))'
    echo "cpus $(nproc)"
} > "$OUT/machine.txt" 2>&1

fit() {  # name, extra args / env
    local name=$1; shift
    echo "== $name" >&2
    env "$@" "$PY" -m benchmarks.model_speed --data-dir "$DATA_DIR" --device cuda --phases \
        --threads "$(nproc)" --out "$OUT/$name.json" > "$OUT/$name.log" 2>&1
    echo "rc $?" >> "$OUT/$name.log"
    tail -n 3 "$OUT/$name.log" >&2
}
fit fit_dense ANIREC_TRAIN_LAYOUT=dense
fit fit_rows ANIREC_TRAIN_LAYOUT=rows
fit fit_compile ANIREC_TRAIN_LAYOUT=dense ANIREC_COMPILE=1

"$PY" - "$DATA_DIR" "$OUT/profile.txt" <<'EOF' > "$OUT/profile.log" 2>&1
"""Two training epochs of the default config under torch.profiler (after one warm-up)."""
import sys
from pathlib import Path

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

from benchmarks.model_speed import catalog_genres
from recommender.model import get_config
from training import data as tdata
from training import devices, loops
from training.splits import load_ratings_csv
from training.train import _network

d = Path(sys.argv[1]) / "anime"
data = tdata.from_frame(
    load_ratings_csv(d / "animelist.csv"), catalog_genres(d / "catalog.csv"), (1.0, 10.0)
)
cfg = get_config("default")
dev = devices.select_device("cuda")
torch.manual_seed(0)
model = _network(data, cfg, dev)[0]
tr, va = tdata.split_users(data.n_users, 0.1, 0)
run = loops.LoopInput(model, data, tr, va, cfg, dev, 3, 0, None, print)
hs = loops._HybridSteps(run)
opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
rng, gen = np.random.default_rng(0), torch.Generator().manual_seed(0)
loops._hybrid_epoch(hs, opt, rng, gen)
torch.cuda.synchronize()
with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as p:
    for _ in range(2):
        loops._hybrid_epoch(hs, opt, rng, gen)
    torch.cuda.synchronize()
table = p.key_averages().table(sort_by="self_cuda_time_total", row_limit=30)
Path(sys.argv[2]).write_text(table)
print(table)
EOF
echo "profile rc $?" >> "$OUT/profile.log"

"$PY" - "$OUT" <<'EOF'
import json, sys
from pathlib import Path
for name in ("fit_dense", "fit_rows", "fit_compile"):
    p = Path(sys.argv[1]) / f"{name}.json"
    if not p.exists():
        print(f"summary {name}: no result (see {name}.log)")
        continue
    r = json.loads(p.read_text())
    ev = r["evaluate"]
    print(
        f"summary {name}: fit {r['fit_wall_seconds']} s (train_model {r['train_seconds']} s), "
        f"{r['samples_per_second']:,} rows/s, {r['epochs']} epochs; unseen RMSE "
        f"{ev.get('rmse', float('nan')):.4f} NDCG@10 {ev.get('ndcg_at_10', float('nan')):.4f}"
    )
EOF
