# Adversarial Focal Loss demo on the synthetic COCO-WholeBody data: the
# CPU-sized WholeBody baseline with its MSE loss wrapped by AFLHeatmapLoss
# (critic on 133 keypoints), and the critic trained every iteration by
# AFLCriticHook.
_base_ = [
    '../baseline/td-hm_res18_1xb16-20e_synthetic-coco-wholebody-128x96.py'
]

custom_imports = dict(imports=['mmpose_afl'], allow_failed_imports=False)

model = dict(
    head=dict(
        loss=dict(
            _delete_=True,
            type='AFLHeatmapLoss',
            base_loss=dict(type='KeypointMSELoss', use_target_weight=True),
            critic=dict(type='AFLCritic', num_keypoints=133))))
custom_hooks = [dict(type='SyncBuffersHook'), dict(type='AFLCriticHook')]
