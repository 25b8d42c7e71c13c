# Fine-tune the zoo's COCO HRNet-w32 256x192 checkpoint with Adversarial
# Focal Loss for 10 epochs (docs/finetune.md), instead of 210 from ImageNet.
# Fresh at the start: only the critic. It is not part of the pose model, so
# the stock checkpoint fills every key of the model (nothing missing or
# unexpected) and iteration 0 predicts exactly as the zoo model; only the
# loss differs. AFLCriticHook warns that the checkpoint has no critic state.
# Why the start is safe: the sample weights are normalised to mean 1 per
# batch and a fresh critic scores all samples alike, so AFL starts as the
# MSE loss; the critic trains at its own lr from the first iteration while
# the pose lr warms up. A short AFL fine-tune therefore stays close to an
# MSE one (measurements: docs/finetune.md).
_base_ = ['./td-hm_hrnet-w32_afl-8xb64-210e_coco-256x192.py']

# the Weights of td-hm_hrnet-w32_8xb64-210e_coco-256x192 in MMPose's
# metafile (body_2d_keypoint/topdown_heatmap/coco/hrnet_coco.yml)
load_from = ('https://download.openmmlab.com/mmpose/v1/body_2d_keypoint/'
             'topdown_heatmap/coco/'
             'td-hm_hrnet-w32_8xb64-210e_coco-256x192-81c58e40_20220909.pth')

# the checkpoint replaces every backbone weight: no ImageNet download
model = dict(backbone=dict(init_cfg=None))

# the stock lr's last stages (5e-5, then 5e-6), which the zoo model was
# trained to convergence at, after the stock 500-iteration warm-up
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
