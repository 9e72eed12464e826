#!/usr/bin/env bash
# Everything the GPU part of docs/performance.md needs, in one call of at most 8 minutes on one
# H100, with no network, using only torch, timm, safetensors, scikit-learn and tqdm:
#   1. python benchmarks/gpu_table.py (at most 270 s): fused-against-explicit and host-sync checks
#      on CUDA, then the interleaved table (vit-b, vit-s at batch 256, tiny at 1024; SimMIM and MAE;
#      baseline, each MTO part alone, MTO; eager and compiled; the plain loop; peak memory; MFU
#      against the measured bf16 matmul peak), written into docs/performance.md between the
#      gpu-check markers;
#   2. scripts/gpu_smoke.sh (at most 170 s): training, a killed and resumed run, NCCL, k-NN, mto bench;
#   3. a short summary, printed last.
# Every stage is time-boxed; one that runs out is reported as such and the next one runs.
# Files (the JSON, the section, the logs, a copy of docs/performance.md) go under OUT.
# Usage: bash benchmarks/gpu_check.sh OUT   (PYTHON=... picks the interpreter)
set -uo pipefail

if [ $# -ne 1 ] || [ -z "$1" ]; then
    echo "gpu_check.sh: give one argument, the folder to write the results in (bash benchmarks/gpu_check.sh OUT)" >&2
    exit 2
fi
OUT=$1
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    echo "gpu_check.sh: no CUDA device is visible (torch.cuda.is_available() is False, or $PY has no torch); run it on a machine with an NVIDIA GPU" >&2
    exit 2
fi
mkdir -p "$OUT" && OUT="$(cd "$OUT" && pwd)"
cd "$ROOT"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

echo "== [$SECONDS s] 1. the GPU table (gpu_table.py, at most 270 s)"
timeout -k 10 270 "$PY" benchmarks/gpu_table.py "$OUT" --budget-s 230 2>&1 | tee "$OUT/gpu_table.log"
TABLE=${PIPESTATUS[0]}
if [ "$TABLE" -ne 0 ] && [ -f "$OUT/gpu_table.json" ]; then  # cut short: write what it measured
    "$PY" benchmarks/gpu_table.py "$OUT" --doc-only >> "$OUT/gpu_table.log" 2>&1
fi
cp docs/performance.md "$OUT/performance.md"

echo "== [$SECONDS s] 2. scripts/gpu_smoke.sh (at most 170 s)"
timeout -k 10 170 bash scripts/gpu_smoke.sh > "$OUT/gpu_smoke.log" 2>&1
SMOKE=$?
tail -n 5 "$OUT/gpu_smoke.log"

echo "== [$SECONDS s] 3. summary"
"$PY" - "$OUT" "$TABLE" "$SMOKE" "$SECONDS" <<'PY'
import json, sys
from pathlib import Path

out, table, smoke, seconds = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
status = lambda rc: "passed" if rc == 0 else ("timed out" if rc in (124, 137) else f"failed (exit {rc})")
print(f"gpu_check.sh: {seconds} s; table {status(table)}, smoke {status(smoke)}; files in {out}")
try:
    r = json.loads((out / "gpu_table.json").read_text())
except (OSError, ValueError):
    sys.exit(print("no table was written") or 1)
find = lambda size, method, variant, compiled: next((x for x in r["rows"] if (x["size"], x["method"], x["variant"],
                                                     x["compiled"]) == (size, method, variant, compiled)), None)
for size in ("vit-b", "vit-s", "tiny"):
    for compiled in (False, True):
        cells = []
        for method in ("simmim", "mae"):
            base, mto = find(size, method, "baseline", compiled), find(size, method, "MTO (all defaults)", compiled)
            if base and mto:
                cells.append(f"{method} {base['ms']:.1f} -> {mto['ms']:.1f} ms ({mto['vs_baseline']:.2f}x, MFU "
                             f"{100 * base['mfu']:.0f}% -> {100 * mto['mfu']:.0f}%, memory {mto['peak_mib'] / base['peak_mib']:.2f}x)")
        if cells:
            print(f"  {size} {'compiled' if compiled else 'eager'}: " + "; ".join(cells))
if r.get("plain"):
    print(f"  tiny SimMIM vs plain loop, batch 1024: {r['plain']['speedup']:.2f}x")
if r.get("host_syncs"):
    print(f"  host syncs in a step: {r['host_syncs']}; fused vs explicit: {r['equal_paths']}")
if r["skipped"]:
    print(f"  skipped: {len(r['skipped'])} stage(s), see {out / 'gpu_table.json'}")
PY
