#!/usr/bin/env bash
# The mini Table 4 of docs/experiments.md (entries 8, 18, 23 and 24): the paper's grid, loss.recon {1, 10, 100, 1000}
# x loss.blur {0.1, 1, 10}, with the paper's model and objective as the quickstart trains them (`--preset
# quickstart`: the regressed depth, the select AIF head with its defocus prior, the soft coarse AIF, no renderer
# window), 20 epochs a cell (EPOCHS=N for another budget) on the quickstart's store (320 synthetic 64x64 scenes,
# rendered without a window, as the preset renders; SEED, default 0, seeds the scenes and every trial's training),
# two trials at a time on 2 cores (0.5 CPU reserved each, so that Ray Data can read: with 1 CPU each the trials'
# datasets wait forever; one torch thread each).
# The preset's schedule is a 2-epoch linear warm-up to lr 2e-3, then a cosine (chosen on the validation
# reconstruction at this budget in entry 33 and at the quickstart's in entry 34); SET adds `--set` overrides to every
# cell (SET="model.detail_input=false optim.lr=1e-3 optim.warmup_epochs=0" trains the four channels at the earlier
# schedule of entries 24c and 28a).
# The network is the quickstart preset's: the paper's four input channels per image and the fifth, high-pass channel
# of entry 47 (the README's grids, entry 49); SET="model.detail_input=false" trains the paper's four channels alone
# (the reference grids of entries 33 and 39).
# Trials rank on val/recon; no ground truth decides anything (delta1 in the table is measured, not used).
#
#     [SEED=0] [EPOCHS=20] [SET="KEY=VALUE ..."] bash benchmarks/table4_mini.sh [WORK_DIR]   # default /tmp/daif-table4
#
# Writes WORK_DIR/{store,runs,mlflow.db}, the table and heat map under WORK_DIR/paper/ and the wall time of the
# search (with the load average) to WORK_DIR/times.txt.
set -euo pipefail
work=${1:-/tmp/daif-table4}
daif=${DAIF:-$(dirname "$0")/../.venv/bin/daif}
export RAY_USAGE_STATS_ENABLED=0
mkdir -p "$work"
[ -f "$work/store/manifest.json" ] || "$daif" render --source synthetic --scenes 320 --size 64x64 --camera nyuv2-5 \
    --seed "${SEED:-0}" --shard-size 32 --kernel-size none --out "$work/store"
load_before=$(cut -d' ' -f1 /proc/loadavg); started=$(date +%s)
# shellcheck disable=SC2086  # SET is a list of KEY=VALUE words
"$daif" tune --data "$work/store" --preset quickstart --space table4 --epochs "${EPOCHS:-20}" --seed "${SEED:-0}" ${SET:+--set $SET} \
    --cpus-per-trial 0.5 --max-concurrent 2 --num-cpus 2 --storage "$work/runs" --tracking-uri "sqlite:///$work/mlflow.db" --name table4-paper --out "$work/paper"
echo "paper: $(( $(date +%s) - started )) s, load $load_before -> $(cut -d' ' -f1 /proc/loadavg)" | tee -a "$work/times.txt"
