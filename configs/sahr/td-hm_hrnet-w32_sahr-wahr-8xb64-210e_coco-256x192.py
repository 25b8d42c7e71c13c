# SAHR + WAHR (SWAHR) on the stock MMPose COCO HRNet-w32 256x192 recipe.
_base_ = [
    'mmpose::body_2d_keypoint/topdown_heatmap/coco/'
    'td-hm_hrnet-w32_8xb64-210e_coco-256x192.py'
]

custom_imports = dict(imports=['mmpose_afl'], allow_failed_imports=False)

# SAHR head (scale maps, scale-adapted targets gt^(1+s), scale regulariser)
# trained with the WAHR loss; inference decodes exactly as HeatmapHead.
model = dict(
    head=dict(
        type='SAHRHead',
        scale_kernel_size=9,
        scale_target='power',
        min_scale_exponent=0.1,
        scale_loss_weight=1.0,
        loss=dict(type='WAHRLoss', gamma=0.01, use_target_weight=True)))
