# Fine-tune the zoo's COCO-WholeBody HRNet-w32 + DARK 256x192 checkpoint
# with KAL (no pixel weights) for 10 epochs
# (docs/finetune.md), instead of 210 from ImageNet.
# Fresh at the start: the loss's keypoint-wise factors
# (head.loss_module.kaf_logits, initialised from the heuristic softened:
# 0.8 on face and hands, 0.2 on body and feet) and the running means of
# its two terms (head.loss_module.running_means, set by the first batch):
# the only keys the stock checkpoint lacks. The model is the stock one, so
# iteration 0 predicts exactly as the zoo model; only the loss differs.
# The zoo checkpoint is an MMPose 0.x one (keypoint_head.*): MMPose's
# TopdownPoseEstimator renames its keys to head.* when it is loaded.
_base_ = ['./td-hm_hrnet-w32_dark-kal-8xb64-210e_coco-wholebody-256x192.py']

# the Weights of td-hm_hrnet-w32_dark-8xb64-210e_coco-wholebody-256x192 in
# MMPose's metafile (wholebody_2d_keypoint/topdown_heatmap/coco-wholebody/
# hrnet_dark_coco-wholebody.yml)
load_from = ('https://download.openmmlab.com/mmpose/top_down/hrnet/'
             'hrnet_w32_coco_wholebody_256x192_dark-469327ef_20200922.pth')

# the checkpoint replaces every backbone weight: no ImageNet download
model = dict(backbone=dict(init_cfg=None))

# the stock lr's last stages (5e-5, then 5e-6), which the zoo model was
# trained to convergence at, after the stock 500-iteration warm-up; the
# fresh factors at the stock lr (10x), as they would train from scratch
train_cfg = dict(max_epochs=10, val_interval=1)
optim_wrapper = dict(
    optimizer=dict(lr=5e-5),
    paramwise_cfg=dict(custom_keys={'kaf_logits': dict(lr_mult=10.)}))
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
