# Fine-tune the zoo's COCO HRNet-w32 256x192 checkpoint with SAHR + WAHR
# for 10 epochs (docs/finetune.md), instead of 210 from ImageNet.
# Fresh at the start: the scale branch (head.scale_layers.*, the only keys
# the stock checkpoint lacks). Its last conv is zero-initialised, so the
# scale maps start at exactly 0 and the target gt^(1+s) is the stock
# Gaussian; the heatmap branch is the stock head, so iteration 0 predicts
# exactly as the zoo model (SAHRHead does not run the scale branch at
# inference). Only the loss differs: WAHR instead of MSE.
_base_ = ['./td-hm_hrnet-w32_sahr-wahr-8xb64-210e_coco-256x192.py']

# the Weights of td-hm_hrnet-w32_8xb64-210e_coco-256x192 in MMPose's
# metafile (body_2d_keypoint/topdown_heatmap/coco/hrnet_coco.yml)
load_from = ('https://download.openmmlab.com/mmpose/v1/body_2d_keypoint/'
             'topdown_heatmap/coco/'
             'td-hm_hrnet-w32_8xb64-210e_coco-256x192-81c58e40_20220909.pth')

# the checkpoint replaces every backbone weight: no ImageNet download
model = dict(backbone=dict(init_cfg=None))

# the stock lr's last stages (5e-5, then 5e-6), which the zoo model was
# trained to convergence at, after the stock 500-iteration warm-up; the
# fresh scale branch at the stock lr (10x), as it would train from scratch
train_cfg = dict(max_epochs=10, val_interval=1)
optim_wrapper = dict(
    optimizer=dict(lr=5e-5),
    paramwise_cfg=dict(custom_keys={'head.scale_layers': dict(lr_mult=10.)}))
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
