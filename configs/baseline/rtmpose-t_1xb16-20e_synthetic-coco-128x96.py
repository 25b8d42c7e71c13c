# CPU-sized RTMPose-t baseline on the synthetic COCO data: the stock MMPose
# RTMPose-t COCO recipe (CSPNeXt + RTMCCHead, SimCC labels, KLDiscretLoss,
# AdamW, its augmentations and two-stage pipeline) at 128x96 input, randomly
# initialised and on the 20-epoch schedule at batch 16 of the heatmap
# baseline td-hm_res18_1xb16-20e_synthetic-coco-128x96.py. The data settings
# are those of configs/_base_/datasets/synthetic_coco.py (data roots, ground-
# truth boxes, the evaluator's annotation file), written out here because a
# config cannot inherit two stock recipes.
_base_ = ['mmpose::body_2d_keypoint/rtmpose/coco/'
          'rtmpose-t_8xb256-420e_coco-256x192.py']

custom_imports = dict(imports=['mmpose_afl'], allow_failed_imports=False)

max_epochs = 20
stage2_num_epochs = 2  # the stock recipe's last 30 of 420 epochs, scaled
base_lr = 1e-3

train_cfg = dict(max_epochs=max_epochs, val_interval=5)
optim_wrapper = dict(optimizer=dict(lr=base_lr))
# the step schedule of the other synthetic baselines (lr x0.1 at epochs 15
# and 18) rather than the stock cosine, so that the accuracy benchmark's
# budget options (benchmarks/bench_accuracy.py) apply to every method alike
param_scheduler = [
    dict(type='LinearLR', begin=0, end=50, start_factor=0.01, by_epoch=False),
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_epochs,
        milestones=[15, 18],
        gamma=0.1,
        by_epoch=True)
]
auto_scale_lr = dict(base_batch_size=16)
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=5, max_keep_ckpts=1, save_best=None))

# the stock codec at half the input size (sigma halved with it)
codec = dict(
    type='SimCCLabel',
    input_size=(96, 128),
    sigma=(2.45, 2.83),
    simcc_split_ratio=2.0,
    normalize=False,
    use_dark=False)

model = dict(
    # no ImageNet weights: nothing can be downloaded on the CI machine; plain
    # BN: SyncBN has no CPU implementation for multi-process CPU training
    backbone=dict(init_cfg=None, norm_cfg=dict(type='BN')),
    head=dict(
        input_size=codec['input_size'],
        in_featuremap_size=tuple([s // 32 for s in codec['input_size']]),
        simcc_split_ratio=codec['simcc_split_ratio'],
        decoder=codec))

albumentation = dict(
    type='Albumentation',
    transforms=[
        dict(type='Blur', p=0.1),
        dict(type='MedianBlur', p=0.1),
        dict(
            type='CoarseDropout',
            max_holes=1,
            max_height=0.4,
            max_width=0.4,
            min_holes=1,
            min_height=0.2,
            min_width=0.2,
            p=1.),
    ])
train_pipeline = [
    dict(type='LoadImage'),
    dict(type='GetBBoxCenterScale'),
    dict(type='RandomFlip', direction='horizontal'),
    dict(type='RandomHalfBody'),
    dict(
        type='RandomBBoxTransform', scale_factor=[0.6, 1.4], rotate_factor=80),
    dict(type='TopdownAffine', input_size=codec['input_size']),
    dict(type='mmdet.YOLOXHSVRandomAug'),
    albumentation,
    dict(type='GenerateTarget', encoder=codec),
    dict(type='PackPoseInputs')
]
train_pipeline_stage2 = [
    dict(type='LoadImage'),
    dict(type='GetBBoxCenterScale'),
    dict(type='RandomFlip', direction='horizontal'),
    dict(type='RandomHalfBody'),
    dict(
        type='RandomBBoxTransform',
        shift_factor=0.,
        scale_factor=[0.75, 1.25],
        rotate_factor=60),
    dict(type='TopdownAffine', input_size=codec['input_size']),
    dict(type='mmdet.YOLOXHSVRandomAug'),
    dict(
        albumentation,
        transforms=albumentation['transforms'][:2] +
        [dict(albumentation['transforms'][2], p=0.5)]),
    dict(type='GenerateTarget', encoder=codec),
    dict(type='PackPoseInputs')
]
val_pipeline = [
    dict(type='LoadImage'),
    dict(type='GetBBoxCenterScale'),
    dict(type='TopdownAffine', input_size=codec['input_size']),
    dict(type='PackPoseInputs')
]

data_root = 'data/synthetic_coco/'
train_dataloader = dict(
    batch_size=16,
    num_workers=2,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=32,
    num_workers=2,
    dataset=dict(data_root=data_root, bbox_file=None, pipeline=val_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(
    ann_file=data_root + 'annotations/person_keypoints_val2017.json')
test_evaluator = val_evaluator

custom_hooks = [
    dict(
        type='mmdet.PipelineSwitchHook',
        switch_epoch=max_epochs - stage2_num_epochs,
        switch_pipeline=train_pipeline_stage2)
]
