#!/usr/bin/env bash
# Adaptation to a user's camera (issue 27, goal 5; docs/experiments.md entry 26): a model trained on synthetic
# stacks is fine-tuned, self-supervised, on captured stacks of a new camera, and measured on that camera's held-out
# stacks before and after.
# The camera: benchmarks/lightfield.py's light-field camera (50 mm, f/4.8 equivalent, 24 um pixels, 160x120, a disc
# aperture; refocused by shift-and-add, so its PSF is the aperture's, not our Gaussian, and its occlusion is real).
# Its captured stacks: light-field seeds 200..231 of the three scene families (96 stacks; `--export`), disjoint from
# the benchmark's development (0..2) and reported (100..104) seeds, stored with `--source focal-stack-folder` and
# trained on without depth (depth.npy is in the folders; training logs val/delta1 as a report and picks its
# checkpoint on val/recon). The fine-tune: the `quickstart` preset from MODEL's weights (`--init-from`), MODEL's
# depth range, lr 1e-3 (half the quickstart's peak) after a linear warm-up over the first epoch (entry 41: it reached a lower
# validation recon than entry 26's tenth of it for both starts tried), EPOCHS epochs (default 10), with the detail term
# (`loss.detail=20`, the contrast-normalised high-pass reconstruction; entry 45: it lowered the validation stacks'
# detail error by 7 % at +1.6 % recon, within the rule written before the run).
# The fine-tune builds the quickstart preset's network (with entry 47's high-pass input channel): a MODEL trained
# without it needs SET="model.detail_input=false" (otherwise `daif train` refuses it, naming the key).
# Measured on the reported seeds, both apertures (the square is another camera: a control), MODEL beside the
# fine-tuned model, the baseline and the search. SET adds `--set` overrides to the fine-tune (SET="loss.psf=disc":
# re-render through a round aperture; "loss.psf=layered": through round-aperture layers with occlusion, entry 43).
#
#     [SET="KEY=VALUE ..."] bash benchmarks/lightfield_adapt.sh WORK_DIR MODEL NEAR FAR    # MODEL: a checkpoint directory, NEAR/FAR its depth range [m]
#
# Writes WORK_DIR/{stacks,store,runs,mlflow.db}, WORK_DIR/train.log, WORK_DIR/lightfield.json (the benchmark's
# record) and the wall times (with the load average) to WORK_DIR/times.txt.
set -euo pipefail
work=$1
model=$2
near=$3
far=$4
epochs=${EPOCHS:-10}
here=$(dirname "$0")
python=${PYTHON:-$here/../.venv/bin/python}
daif=${DAIF:-$here/../.venv/bin/daif}
export RAY_USAGE_STATS_ENABLED=0
mkdir -p "$work"
step() {  # step NAME COMMAND...: run it, append its wall time and the load average to times.txt
    local name=$1 started load_before
    shift
    load_before=$(cut -d' ' -f1 /proc/loadavg); started=$(date +%s)
    "$@"
    echo "$name: $(( $(date +%s) - started )) s, load $load_before -> $(cut -d' ' -f1 /proc/loadavg)" | tee -a "$work/times.txt"
}
seeds=$(seq -s, 200 231)
[ -d "$work/stacks/train" ] || step export "$python" "$here/lightfield.py" --export "$work/stacks" --seeds "$seeds" --apertures disc
[ -f "$work/store/manifest.json" ] || step render "$daif" render --source focal-stack-folder --input "$work/stacks" --split train \
    --align none --out "$work/store"
step train bash -c "set -o pipefail; \"$daif\" train --data \"$work/store\" --preset quickstart --init-from \"$model\" --epochs $epochs \
    --set model.near=$near --set model.far=$far --set optim.lr=1e-3 --set optim.warmup_epochs=1 --set loss.detail=20 ${SET:+--set $SET} --storage \"$work/runs\" \
    --tracking-uri \"sqlite:///$work/mlflow.db\" --experiment daif-adapt 2>&1 | tee \"$work/train.log\""
adapted=$(sed -n 's/^best checkpoint: *//p' "$work/train.log")
step measure "$python" "$here/lightfield.py" --model "$model" --model "$adapted" --out "$work/lightfield.json"
