# AFL wrapping HSM on the synthetic COCO data: the HSM demo config (logit
# heatmaps, SigmoidHeatmapHead) with its loss re-weighted per sample by the AFL
# critic. The heatmaps are logits, so keypoint centroids keep the pixels with
# a non-negative logit (sigmoid >= 0.5): centroid_threshold=0.
_base_ = ['../hsm/td-hm_res18_hsm-1xb16-20e_synthetic-coco-128x96.py']

custom_imports = dict(imports=['mmpose_afl'], allow_failed_imports=False)

model = dict(
    head=dict(
        loss=dict(
            _delete_=True,
            type='AFLHeatmapLoss',
            base_loss=dict(
                type='HSMLoss', beta=1.0, gamma=2.0, use_target_weight=True),
            critic=dict(type='AFLCritic', num_keypoints=17),
            centroid_threshold=0.)))
custom_hooks = [dict(type='SyncBuffersHook'), dict(type='AFLCriticHook')]
