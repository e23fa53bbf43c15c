#!/usr/bin/env bash
# The Figure 6 study of docs/experiments.md (entry 24) at the quickstart's scale: the paper's model and objective
# (`--preset quickstart`: regressed depth, the select AIF head, the soft coarse AIF, no renderer window), trained
# twice on one dense store and evaluated across stack sizes and focus distances:
#   robust: `data.mode=binned`, one random image from each of 5 bins of the dense stack every step (appendix A.1);
#   fixed:  `data.mode=fixed`, always the 5 bins' middle images (the validation stack of the robust run).
# The store: 320 synthetic 64x64 scenes, the paper's dense camera (nyuv2-dense: 17 mm, f/1.2, 100 focus distances
# uniform in 1..9 m), rendered without a window. Checkpoints on val/recon (the middle-of-bin stacks of the
# validation split); the test split is measured once both are trained: stack sizes 2 3 5 8 10 (each size's
# middle-of-bin images) and two 5-image focus sets the fixed run never saw (near and far).
#
# The network is the quickstart preset's: the paper's four input channels per image and the fifth, high-pass channel
# of entry 47 (the README's figures, entry 50). SET adds `--set` overrides to both trainings:
# SET="model.detail_input=false" trains the paper's four channels alone (entry 36's reference figures); entries 24b
# and 28c ran them before the preset's warm-up: SET="model.detail_input=false optim.lr=1e-3 optim.warmup_epochs=0".
#
#     [SET="KEY=VALUE ..."] bash benchmarks/figure6.sh [WORK_DIR] [SEED]     # default /tmp/daif-figure6, seed 0
#
# Writes WORK_DIR/{store,runs,mlflow.db}, WORK_DIR/evaluation/ (`daif evaluate` of both models: metrics and
# generalisation.png/.csv), the training logs and the wall times (with the load average) to WORK_DIR/times.txt.
set -euo pipefail
work=${1:-/tmp/daif-figure6}
seed=${2:-0}
daif=${DAIF:-$(dirname "$0")/../.venv/bin/daif}
export RAY_USAGE_STATS_ENABLED=0
mkdir -p "$work"
[ -f "$work/store/manifest.json" ] || "$daif" render --source synthetic --scenes 320 --size 64x64 --camera nyuv2-dense \
    --seed 0 --shard-size 32 --kernel-size none --out "$work/store"
fixed_middles="data.fixed_indices=[9,29,49,69,89]"  # BinSampler(100, 5, "middle"): the robust run's validation stack
for mode in robust fixed; do
    if [ "$mode" = robust ]; then data="data.mode=binned data.num_bins=5"; else data="data.mode=fixed $fixed_middles"; fi
    load_before=$(cut -d' ' -f1 /proc/loadavg); started=$(date +%s)
    # shellcheck disable=SC2086
    "$daif" train --data "$work/store" --preset quickstart --seed "$seed" --set $data ${SET:-} --storage "$work/runs" \
        --tracking-uri "sqlite:///$work/mlflow.db" --experiment daif-figure6 2>&1 | tee "$work/train-$mode.log"
    echo "train $mode: $(( $(date +%s) - started )) s, load $load_before -> $(cut -d' ' -f1 /proc/loadavg)" | tee -a "$work/times.txt"
done
robust=$(sed -n 's/^best checkpoint: *//p' "$work/train-robust.log")
fixed=$(sed -n 's/^best checkpoint: *//p' "$work/train-fixed.log")
"$daif" evaluate --model "$robust" "$fixed" --name robust fixed --data "$work/store" --split test --out "$work/evaluation" \
    --stack-sizes 2 3 5 8 10 --focus-set 1 1.5 2 2.5 3 --focus-set 5 6 7 8 9 \
    --tracking-uri "sqlite:///$work/mlflow.db" --experiment daif-figure6
