# CPU-sized RLE baseline on the synthetic COCO data: the stock MMPose RLE
# ResNet-50 COCO 256x192 recipe (RLEHead, RLELoss, Adam) shrunk to a randomly
# initialised ResNet-18 at 128x96 input and the 20-epoch schedule of the
# heatmap baseline td-hm_res18_1xb16-20e_synthetic-coco-128x96.py. The data
# settings are those of configs/_base_/datasets/synthetic_coco.py, written out
# here because a config cannot inherit two stock recipes.
_base_ = ['mmpose::body_2d_keypoint/topdown_regression/coco/'
          'td-reg_res50_rle-8xb64-210e_coco-256x192.py']

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
    logger=dict(interval=10),
    checkpoint=dict(interval=5, max_keep_ckpts=1, save_best=None))

codec = dict(type='RegressionLabel', input_size=(96, 128))

model = dict(
    # no ImageNet weights: nothing can be downloaded on the CI machine
    backbone=dict(depth=18, init_cfg=None),
    head=dict(in_channels=512, decoder=codec))

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
