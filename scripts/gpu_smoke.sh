#!/usr/bin/env bash
# GPU smoke test, on one node with CUDA devices, in under 5 minutes:
#   1. trains vit-s (MAE + MTO) with bf16 autocast for a few steps;
#   2. continues it, kills it with SIGKILL mid-way and resumes it to the end;
#   3. runs torchrun with NCCL on the visible devices;
#   4. evaluates the run (k-NN probe on the GPU);
#   5. runs `mto bench` on the GPU.
# Exits non-zero on any failure, and refuses to start where no CUDA device is visible.
# Usage: bash scripts/gpu_smoke.sh   (from anywhere; PYTHON=... picks the interpreter)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python3}

if ! NGPU=$("$PY" -c 'import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)'); then
    echo "gpu_smoke.sh: python with torch is needed ($PY could not import torch)" >&2
    exit 2
fi
if [ "$NGPU" -lt 1 ]; then
    echo "gpu_smoke.sh: no CUDA device is visible (torch.cuda.is_available() is False); run it on a machine with an NVIDIA GPU" >&2
    exit 2
fi

OUT=$(mktemp -d "${TMPDIR:-/tmp}/mto-gpu-smoke.XXXXXX")
trap 'rm -rf "$OUT"' EXIT
mto() { "$PY" -m mto_core.cli "$@"; }
step() { echo "== [$SECONDS s] $*"; }
fail() { echo "gpu_smoke.sh: FAILED: $*" >&2; exit 1; }
last_step() {  # newest logged training step of a run, 0 if none yet
    "$PY" - "$1" <<'PY'
import json, sys
steps = [0]
try:
    for line in open(sys.argv[1] + "/metrics.jsonl"):
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if row.get("kind") == "train":
            steps.append(row["step"])
except FileNotFoundError:
    pass
print(max(steps))
PY
}

RUN="$OUT/vit-s"
# The shipped Fashion-MNIST subset, resized to 224 x 224 x 3: 168 steps an epoch at batch 32.
TRAIN=(train --preset mae-mto --size vit-s --device cuda --batch-size 32 --out "$RUN" --quiet
       --set data.root=shipped --set train.log_every=5)

step "1. vit-s on cuda with bf16 autocast, 20 steps ($NGPU device(s) visible)"
mto "${TRAIN[@]}" --max-steps 20
[ -d "$RUN/step-00000020" ] || fail "no checkpoint at step 20"

step "2. continue to 200 steps, SIGKILL after step 40 is logged, resume"
"$PY" -m mto_core.cli "${TRAIN[@]}" --max-steps 200 --resume &  # not through mto(): $! must be python
pid=$!
for _ in $(seq 600); do
    [ "$(last_step "$RUN")" -ge 40 ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
done
kill -0 "$pid" 2>/dev/null || fail "the run ended before it could be killed at step 40"
kill -KILL "$pid"
wait "$pid" 2>/dev/null || true
echo "killed at step $(last_step "$RUN"); resuming"
mto "${TRAIN[@]}" --max-steps 200 --resume
[ -d "$RUN/step-00000200" ] || fail "the resumed run has no checkpoint at step 200"
"$PY" - "$RUN" <<'PY' || fail "metrics.jsonl does not log each step once, or a loss is not finite"
import json, math, sys
rows = [json.loads(line) for line in open(sys.argv[1] + "/metrics.jsonl")]
steps = [r["step"] for r in rows if r["kind"] == "train"]
assert steps == sorted(set(steps)) and steps[-1] == 200, steps  # every 5 steps, and at 168 (an epoch)
assert all(math.isfinite(r["loss"]) for r in rows if r["kind"] == "train")
PY

step "3. torchrun with NCCL on $NGPU device(s)"
"$PY" -m torch.distributed.run --standalone --nproc_per_node "$NGPU" -m mto_core.cli train --preset simmim-mto \
    --size vit-s --device cuda --max-steps 10 --batch-size 16 --out "$OUT/ddp" --quiet --set data.root=shipped
[ -d "$OUT/ddp/step-00000010" ] || fail "the torchrun run has no checkpoint at step 10"
# With one device the training above is a single process that needs no process group: check
# that NCCL itself initializes and reduces on the visible devices.
cat > "$OUT/nccl_check.py" <<'PY'
import os

import torch
import torch.distributed as dist

torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
dist.init_process_group("nccl")
x = torch.full((1,), float(dist.get_rank() + 1), device="cuda")
dist.all_reduce(x)
n = dist.get_world_size()
assert x.item() == n * (n + 1) / 2, (x.item(), n)
dist.destroy_process_group()
PY
"$PY" -m torch.distributed.run --standalone --nproc_per_node "$NGPU" "$OUT/nccl_check.py" \
    || fail "NCCL all-reduce on the visible devices"

step "4. evaluate (k-NN probe on cuda)"
RESULT=$(mto eval "$RUN" --probe knn --device cuda --bank-size 2000 --json)
echo "$RESULT"
"$PY" -c 'import json, sys; r = json.loads(sys.argv[1]); assert 0.1 < r["accuracy"] <= 1, r' "$RESULT" \
    || fail "the k-NN accuracy is not above chance (0.1)"

step "5. mto bench on cuda"
mto bench --device cuda --rounds 3 --size tiny --size vit-s --json > "$OUT/bench.json"
"$PY" -c 'import json, sys; r = json.load(open(sys.argv[1])); assert r["training"] and r["device"].startswith("cuda"), r' \
    "$OUT/bench.json" || fail "mto bench gave no training rows on cuda"

[ "$SECONDS" -le 300 ] || fail "took $SECONDS s, more than 5 minutes"
step "all passed in $SECONDS s"
