# Fine-tune the zoo's COCO HRNet-w32 256x192 checkpoint with the Hard
# Sample Mining loss for 10 epochs (docs/finetune.md), instead of 210 from
# ImageNet.
# Fresh at the start: nothing by key (SigmoidHeatmapHead has HeatmapHead's
# layers, so the stock checkpoint fills every key and overwrites the head's
# background prior bias), but the meaning of the head's output changes: the
# stock final conv predicts MSE-trained heatmaps (background ~0), which
# SigmoidHeatmapHead reads as logits, so the whole background starts at
# sigmoid(0) = 0.5. Iteration 0 finds the same keypoints as the zoo model
# (the sigmoid is monotonic), but that start is not safe: fine-tuned from
# it, HSM collapsed (docs/finetune.md). SigmoidHeadCalibrationHook
# (custom_hooks below) re-calibrates the final conv when the checkpoint is
# loaded (logit = a y + b maps the MSE range [0, 1] to sigmoid [0.1, 0.9];
# same keypoints); it leaves checkpoints of this run (resume, load_from) as
# they are.
_base_ = ['./td-hm_hrnet-w32_hsm-8xb64-210e_coco-256x192.py']

# the Weights of td-hm_hrnet-w32_8xb64-210e_coco-256x192 in MMPose's
# metafile (body_2d_keypoint/topdown_heatmap/coco/hrnet_coco.yml), the
# checkpoint to re-calibrate (see above)
load_from = ('https://download.openmmlab.com/mmpose/v1/body_2d_keypoint/'
             'topdown_heatmap/coco/'
             'td-hm_hrnet-w32_8xb64-210e_coco-256x192-81c58e40_20220909.pth')

# the checkpoint replaces every backbone weight: no ImageNet download
model = dict(backbone=dict(init_cfg=None))

# the stock lr's last stages (5e-5, then 5e-6), which the zoo model was
# trained to convergence at, after the stock 500-iteration warm-up; one lr
# for all (the re-calibrated final layer is not fresh)
train_cfg = dict(max_epochs=10, val_interval=1)
optim_wrapper = dict(optimizer=dict(lr=5e-5))
param_scheduler = [
    dict(
        type='LinearLR', begin=0, end=500, start_factor=0.001,
        by_epoch=False),  # warm-up
    dict(
        type='MultiStepLR',
        begin=0,
        end=10,
        milestones=[8],
        gamma=0.1,
        by_epoch=True)
]
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=2))
custom_hooks = _base_.custom_hooks + [
    dict(type='SigmoidHeadCalibrationHook', prior=0.1)
]
