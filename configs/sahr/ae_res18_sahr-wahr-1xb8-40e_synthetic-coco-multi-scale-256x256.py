# Bottom-up SAHR + WAHR demo on the multi-person synthetic COCO data
# (CPU-sized baseline, only the head and its keypoint loss change).
_base_ = [
    '../baseline/ae_res18_1xb8-40e_synthetic-coco-multi-scale-256x256.py'
]

# AE head + scale maps (one per keypoint type), the scale-adapted target
# gt^(1+s) of every person in the image, the scale regulariser and WAHR on
# the keypoint heatmaps; tag loss and decoding as the stock AE head.
model = dict(
    head=dict(
        type='AESAHRHead',
        scale_kernel_size=9,
        scale_target='power',
        min_scale_exponent=0.1,
        scale_loss_weight=1.0,
        keypoint_loss=dict(_delete_=True, type='WAHRLoss', gamma=0.01)))
