# FoWKAL demo on the synthetic COCO-WholeBody data: the CPU-sized WholeBody
# baseline (which already reports per-part AP/AR) with only the loss changed.
_base_ = [
    '../baseline/td-hm_res18_1xb16-20e_synthetic-coco-wholebody-128x96.py'
]

model = dict(
    head=dict(
        loss=dict(
            type='FoWKALLoss',
            num_keypoints=133,  # the head's out_channels, checked at build
            kaf='learned',
            weighting='fwahr',
            gamma=0.01,
            tau=1.0,
            use_target_weight=True)))
