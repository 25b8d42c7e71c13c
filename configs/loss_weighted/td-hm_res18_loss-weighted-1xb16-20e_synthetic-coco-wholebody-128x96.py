# Loss-proportional weighting on the synthetic COCO-WholeBody data: the
# CPU-sized WholeBody baseline with its MSE loss wrapped by
# LossWeightedHeatmapLoss, i.e. each sample weighted by its own detached MSE
# (gamma=1), normalised to mean 1 per batch as AFL's weights are. AFL with the
# critic replaced by the loss itself; no critic and no hook.
# docs/hard_examples.md compares it with AFL.
_base_ = [
    '../baseline/td-hm_res18_1xb16-20e_synthetic-coco-wholebody-128x96.py'
]

custom_imports = dict(imports=['mmpose_afl'], allow_failed_imports=False)

model = dict(
    head=dict(
        loss=dict(
            _delete_=True,
            type='LossWeightedHeatmapLoss',
            base_loss=dict(type='KeypointMSELoss', use_target_weight=True),
            gamma=1.)))
