#!/bin/bash
# Baseline AE (MaskedAEHead, MSE) vs AE + SAHR + WAHR (AESAHRHead) on the
# multi-person synthetic COCO set, 3 seeds, paired by seed, with AP by person
# size (StratifiedCocoMetric: AP_small = the small tier 35-60 px, AP_area_M /
# AP_area_L = COCO's area ranges). Run from the repo root:
#   bash benchmarks/ae_sahr_comparison.sh [EPOCHS=40] [OUT=work_dirs/ae_sahr_cmp]
# The table also goes to OUT/results.md. Measured (3 seeds, about 27 min per
# run with two in parallel on 2 cores): benchmarks/results_ae_sahr.md.
# (DATA=... SEEDS='0 1' to change the data root or the seeds; finished runs
# are not repeated, so SEEDS=0 first and then the full command reuses seed 0)
set -eo pipefail
EPOCHS=${1:-40}; OUT=${2:-work_dirs/ae_sahr_cmp}
DATA=${DATA:-data/synthetic_coco_multi_scale}; SEEDS=${SEEDS:-0 1 2}
[ -d $DATA ] || .venv/bin/python tools/make_synthetic_data.py --kind coco --layout multi_scale \
    --out $DATA --num-train 200 --num-val 50 --seed 0
mkdir -p $OUT/configs
run() {  # config seed; a run that reached its last checkpoint is kept
  name=$(basename $1 .py)
  [ -f $OUT/$name/seed$2/epoch_$EPOCHS.pth ] && return
  OMP_NUM_THREADS=1 nice -n 10 .venv/bin/mim train mmpose $OUT/configs/$name.py \
    --work-dir $OUT/$name/seed$2 --cfg-options randomness.seed=$2 \
    train_cfg.max_epochs=$EPOCHS train_cfg.val_interval=$EPOCHS param_scheduler.1.end=$EPOCHS \
    "param_scheduler.1.milestones=[$((EPOCHS*3/4)),$((EPOCHS*9/10))]" \
    train_dataloader.dataset.data_root=$DATA/ val_dataloader.dataset.data_root=$DATA/ \
    test_dataloader.dataset.data_root=$DATA/ \
    val_evaluator.ann_file=$DATA/annotations/person_keypoints_val2017.json \
    default_hooks.checkpoint.save_best=None \
    train_dataloader.num_workers=0 train_dataloader.persistent_workers=False \
    val_dataloader.num_workers=0 val_dataloader.persistent_workers=False \
    > $OUT/${name}_seed$2.log 2>&1
}
CONFIGS="configs/baseline/ae_res18_1xb8-40e_synthetic-coco-multi-scale-256x256.py
configs/sahr/ae_res18_sahr-wahr-1xb8-40e_synthetic-coco-multi-scale-256x256.py"
for cfg in $CONFIGS; do  # + reseed before init_weights (same start at a seed), stratified metric
  cat > $OUT/configs/$(basename $cfg .py).py <<CFG
_base_ = ['$PWD/$cfg']
custom_hooks = [dict(type='ReseedBeforeInitHook')]
val_evaluator = dict(type='StratifiedCocoMetric')
CFG
done
for seed in $SEEDS; do  # the two methods of a seed in parallel (2 cores)
  for cfg in $CONFIGS; do run $cfg $seed & done; wait
done
.venv/bin/python - $OUT $EPOCHS $DATA $SEEDS <<'PY' | tee $OUT/results.md
import os, platform, sys, time
from mmpose_afl.benchmark.paired import RULE, paired
from mmpose_afl.zoo import read_measured
out, epochs, data = sys.argv[1:4]
BASE = 'ae_res18_1xb8-40e_synthetic-coco-multi-scale-256x256'
SAHR = 'ae_res18_sahr-wahr-1xb8-40e_synthetic-coco-multi-scale-256x256'
SEEDS = [int(s) for s in sys.argv[4:]]
cpu = [l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo')
       if l.startswith('model name')][:1] or [platform.machine()]
print(f'{time.strftime("%Y-%m-%d %H:%M")}, {cpu[0]}, {os.cpu_count()} '
      f'cores; {epochs} epochs on {data}, seeds {SEEDS}, the two methods of '
      'a seed in parallel\n')
runs = {m: {s: read_measured(f'{out}/{m}/seed{s}').metrics for s in SEEDS}
        for m in (BASE, SAHR)}
seeds = ', '.join(f's{s}' for s in SEEDS)
print(f'| metric | AE ({seeds}) | AE + SAHR + WAHR: Δ ({seeds}) | mean ± sd | verdict |')
print('|---|---|---|---|---|')
for key in ('coco/AP', 'coco/AP .5', 'coco/AR', 'coco/AP_small', 'coco/AR_small', 'coco/AP_area_M',
            'coco/AP_area_L', 'coco/AP_clean', 'coco/AP_any_flag', 'coco/AP_occluded', 'coco/AP_truncated',
            'coco/AP_unusual_pose'):
    ref = {s: runs[BASE][s][key] for s in SEEDS}
    new = {s: runs[SAHR][s][key] for s in SEEDS}
    r = paired(new, ref)
    mean = 'n/a' if r['mean'] is None else f"{r['mean']:+.3f} ± {r['sd']:.3f}"
    print(f"| {key} | {', '.join(f'{ref[s]:.3f}' for s in SEEDS)} | "
          f"{', '.join(f'{d:+.3f}' for d in r['diffs'])} | {mean} | {r['verdict']} |")
print('\n' + RULE)
PY
