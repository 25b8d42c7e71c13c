# SAHR + WAHR demo on the synthetic COCO-WholeBody data: the CPU-sized
# WholeBody baseline (DARK targets, per-part AP/AR) with only the head
# changed, as the synthetic COCO SAHR config does.
_base_ = [
    '../baseline/td-hm_res18_1xb16-20e_synthetic-coco-wholebody-128x96.py'
]

# SAHR head (scale maps, scale-adapted targets gt^(1+s), scale regulariser)
# trained with the WAHR loss; inference decodes exactly as HeatmapHead.
# DARK's Gaussians are never cut off: support_floor (default exp(-4.5), in
# head and loss) keeps their 3-sigma disc as the foreground.
model = dict(
    head=dict(
        type='SAHRHead',
        scale_kernel_size=9,
        scale_target='power',
        min_scale_exponent=0.1,
        scale_loss_weight=1.0,
        loss=dict(type='WAHRLoss', gamma=0.01, use_target_weight=True)))
