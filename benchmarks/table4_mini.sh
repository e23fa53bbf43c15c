#!/usr/bin/env bash
# The mini Table 4 of docs/experiments.md (entry 8): the paper's grid, loss.recon {1, 10, 100, 1000} x
# loss.blur {0.1, 1, 10}, 8 epochs a cell on 200 synthetic 48x48 scenes, two trials at a time on 2 cores,
# once with the paper's objective (the defaults) and once with the search-term recipe of entry 5 (the quickstart's
# recipe until entry 11).
#
#     bash benchmarks/table4_mini.sh [WORK_DIR]     # default /tmp/daif-table4
#
# Writes WORK_DIR/{store,runs,mlflow.db}, the tables and heat maps of both searches under
# WORK_DIR/{paper,recipe}/ and the wall time of each search (with the load average) to WORK_DIR/times.txt.
set -euo pipefail
work=${1:-/tmp/daif-table4}
daif=${DAIF:-$(dirname "$0")/../.venv/bin/daif}
export RAY_USAGE_STATS_ENABLED=0
mkdir -p "$work"
[ -f "$work/store/manifest.json" ] || "$daif" render --source synthetic --scenes 200 --size 48x48 --preset nyuv2-5 \
    --seed 0 --out "$work/store"
common=(--data "$work/store" --preset nyuv2-5 --space table4 --epochs 8 --cpus-per-trial 0.5 --max-concurrent 2
        --num-cpus 2 --storage "$work/runs" --tracking-uri "sqlite:///$work/mlflow.db"
        --set model.width=8 --set model.levels=3 --set optim.batch_size=4 --set optim.lr=0.002
        --set model.near=0.75 --set model.far=7.5)
recipe=(--set loss.search=300 --set loss.recon_trains_depth=false --set loss.aif_recon=1 --set loss.aif_blur=0.1)
run() {  # name, extra arguments
    local name=$1; shift
    local load_before started
    load_before=$(cut -d' ' -f1 /proc/loadavg); started=$(date +%s)
    "$daif" tune "${common[@]}" --name "table4-$name" --out "$work/$name" "$@"
    echo "$name: $(( $(date +%s) - started )) s, load $load_before -> $(cut -d' ' -f1 /proc/loadavg)" | tee -a "$work/times.txt"
}
run paper
run recipe "${recipe[@]}"
