# CPU-sized bottom-up baseline on the multi-person synthetic COCO data: the
# stock MMPose associative-embedding recipe (HRNet-w32 512x512, MSE heatmap
# loss, AE tag loss) shrunk to a randomly initialised ResNet-18 with three
# deconv layers at 256x256 input (64x64 heatmaps) and a 40-epoch schedule.
# Two changes are needed to train it at all with MMPose 1.3.2 (the stock
# config ships an empty train_pipeline): the codec
# `AssociativeEmbeddingLabels` packs the `keypoint_indices` the tag loss
# reads, and `MaskedAEHead` masks the keypoint loss with the heatmap mask
# instead of per-person keypoint weights (which fail for any image with
# other than one person). Both keep the stock layers, state dict and
# decoding. The bottom-up SAHR demo config inherits this one and changes
# only the head and its loss.
_base_ = ['../_base_/datasets/synthetic_coco_multi_scale.py']

custom_imports = dict(imports=['mmpose_afl'], allow_failed_imports=False)

train_cfg = dict(max_epochs=40, val_interval=10)
optim_wrapper = dict(optimizer=dict(type='Adam', lr=1.5e-3))
param_scheduler = [
    dict(type='LinearLR', begin=0, end=50, start_factor=0.01, by_epoch=False),
    dict(
        type='MultiStepLR',
        begin=0,
        end=40,
        milestones=[30, 36],
        gamma=0.1,
        by_epoch=True)
]
auto_scale_lr = dict(base_batch_size=8)
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=10, max_keep_ckpts=1))

codec = dict(
    type='AssociativeEmbeddingLabels',
    input_size=(256, 256),
    heatmap_size=(64, 64),
    sigma=2,
    decode_topk=30,
    decode_center_shift=0.5,
    decode_keypoint_order=[
        0, 1, 2, 3, 4, 5, 6, 11, 12, 7, 8, 9, 10, 13, 14, 15, 16
    ],
    decode_max_instances=30)

model = dict(
    backbone=dict(
        _delete_=True,
        type='ResNet',
        depth=18,
        # no ImageNet weights: nothing can be downloaded on the CI machine
        init_cfg=None),
    head=dict(
        type='MaskedAEHead',
        in_channels=512,
        deconv_out_channels=(128, 128, 128),
        deconv_kernel_sizes=(4, 4, 4),
        decoder=dict(codec, heatmap_size=codec['input_size'])))

train_pipeline = [
    dict(type='LoadImage'),
    dict(type='BottomupRandomAffine', input_size=codec['input_size']),
    dict(type='RandomFlip', direction='horizontal'),
    dict(type='GenerateTarget', encoder=codec),
    dict(type='BottomupGetHeatmapMask'),
    dict(type='PackPoseInputs'),
]
val_pipeline = [
    dict(type='LoadImage'),
    dict(
        type='BottomupResize',
        input_size=codec['input_size'],
        size_factor=32,
        resize_mode='expand'),
    dict(
        type='PackPoseInputs',
        meta_keys=('id', 'img_id', 'img_path', 'crowd_index', 'ori_shape',
                   'img_shape', 'input_size', 'input_center', 'input_scale',
                   'flip', 'flip_direction', 'flip_indices', 'raw_ann_info',
                   'skeleton_links'))
]
train_dataloader = dict(
    batch_size=8, num_workers=2, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(num_workers=2, dataset=dict(pipeline=val_pipeline))
test_dataloader = val_dataloader
