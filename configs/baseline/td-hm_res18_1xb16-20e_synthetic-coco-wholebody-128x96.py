# CPU-sized baseline on the synthetic COCO-WholeBody data: the stock MMPose
# HRNet-w32 + DARK 256x192 recipe (MSE loss, unbiased MSRA heatmaps) shrunk
# to a randomly initialised ResNet-18 at 128x96 input and a 20-epoch
# schedule, so that it trains in minutes on 2 CPU cores. Method demo configs
# inherit this one and change only their loss or head.
_base_ = ['../_base_/datasets/synthetic_coco-wholebody.py']

custom_imports = dict(imports=['mmpose_afl'], allow_failed_imports=False)

train_cfg = dict(max_epochs=20, val_interval=5)
optim_wrapper = dict(optimizer=dict(type='Adam', lr=1e-3))
param_scheduler = [
    dict(type='LinearLR', begin=0, end=50, start_factor=0.01, by_epoch=False),
    dict(
        type='MultiStepLR',
        begin=0,
        end=20,
        milestones=[15, 18],
        gamma=0.1,
        by_epoch=True)
]
auto_scale_lr = dict(base_batch_size=16)
default_hooks = dict(
    logger=dict(interval=10), checkpoint=dict(interval=5, max_keep_ckpts=1))

codec = dict(
    type='MSRAHeatmap', input_size=(96, 128), heatmap_size=(24, 32), sigma=2,
    unbiased=True)

model = dict(
    # no ImageNet weights: nothing can be downloaded on the CI machine
    backbone=dict(_delete_=True, type='ResNet', depth=18, init_cfg=None),
    head=dict(
        in_channels=512, deconv_out_channels=(128, 128, 128), decoder=codec))

train_pipeline = [
    dict(type='LoadImage'),
    dict(type='GetBBoxCenterScale'),
    dict(type='RandomFlip', direction='horizontal'),
    dict(type='RandomHalfBody'),
    dict(type='RandomBBoxTransform'),
    dict(type='TopdownAffine', input_size=codec['input_size']),
    dict(type='GenerateTarget', encoder=codec),
    dict(type='PackPoseInputs')
]
val_pipeline = [
    dict(type='LoadImage'),
    dict(type='GetBBoxCenterScale'),
    dict(type='TopdownAffine', input_size=codec['input_size']),
    dict(type='PackPoseInputs')
]
train_dataloader = dict(
    batch_size=16, num_workers=2, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=32, num_workers=2, dataset=dict(pipeline=val_pipeline))
test_dataloader = val_dataloader
