# Bottom-up SAHR + WAHR on the stock MMPose associative-embedding HRNet-w32
# 512x512 COCO config (zoo AP 0.656), the setting of the SWAHR paper and
# its official code (HigherHRNet). Only the head, its keypoint loss and the
# training pipeline change; inference is the stock AE head's.
_base_ = [
    'mmpose::body_2d_keypoint/associative_embedding/coco/'
    'ae_hrnet-w32_8xb24-300e_coco-512x512.py'
]

custom_imports = dict(imports=['mmpose_afl'], allow_failed_imports=False)

# The stock codec, packing the `keypoint_indices` the tag loss reads
# (MMPose 1.3.2's PackPoseInputs drops them, and the stock config ships an
# empty train_pipeline).
train_codec = dict(
    type='AssociativeEmbeddingLabels',
    input_size=(512, 512),
    heatmap_size=(128, 128),
    sigma=2,
    decode_topk=30,
    decode_center_shift=0.5,
    decode_keypoint_order=[
        0, 1, 2, 3, 4, 5, 6, 11, 12, 7, 8, 9, 10, 13, 14, 15, 16
    ],
    decode_max_instances=30)

# AE head + scale maps (one per keypoint type, s = 0 at the start), the
# scale-adapted target gt^(1+s) of every person in the image, the scale
# regulariser and WAHR on the keypoint heatmaps; the tag loss unchanged.
model = dict(
    head=dict(
        type='AESAHRHead',
        scale_kernel_size=9,
        scale_target='power',
        min_scale_exponent=0.1,
        scale_loss_weight=1.0,
        keypoint_loss=dict(_delete_=True, type='WAHRLoss', gamma=0.01)))

# HigherHRNet's augmentation (the defaults of BottomupRandomAffine: scale
# 0.75-1.5, rotation 30 degrees, shift 0.2), as MMPose's DEKR config
train_pipeline = [
    dict(type='LoadImage'),
    dict(type='BottomupRandomAffine', input_size=train_codec['input_size']),
    dict(type='RandomFlip', direction='horizontal'),
    dict(type='GenerateTarget', encoder=train_codec),
    dict(type='BottomupGetHeatmapMask'),
    dict(type='PackPoseInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
