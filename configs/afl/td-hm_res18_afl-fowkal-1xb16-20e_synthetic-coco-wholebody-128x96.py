# AFL wrapping FoWKAL on the synthetic COCO-WholeBody data: the FoWKAL demo
# config with its loss re-weighted per sample by the AFL critic (133
# keypoints), trained every iteration by AFLCriticHook.
_base_ = [
    '../fowkal/'
    'td-hm_res18_fowkal-1xb16-20e_synthetic-coco-wholebody-128x96.py'
]

custom_imports = dict(imports=['mmpose_afl'], allow_failed_imports=False)

model = dict(
    head=dict(
        loss=dict(
            _delete_=True,
            type='AFLHeatmapLoss',
            base_loss=dict(
                type='FoWKALLoss',
                kaf='learned',
                weighting='fwahr',
                gamma=0.01,
                tau=1.0,
                use_target_weight=True),
            critic=dict(type='AFLCritic', num_keypoints=133))))
custom_hooks = [dict(type='SyncBuffersHook'), dict(type='AFLCriticHook')]
