# SAHR + WAHR demo on the synthetic COCO data (CPU-sized baseline, only the
# head and loss change).
_base_ = ['../baseline/td-hm_res18_1xb16-20e_synthetic-coco-128x96.py']

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
