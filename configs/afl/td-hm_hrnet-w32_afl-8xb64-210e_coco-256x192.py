# Adversarial Focal Loss on the stock MMPose COCO HRNet-w32 256x192 recipe:
# the head's MSE loss is wrapped by AFLHeatmapLoss and AFLCriticHook trains
# the critic every iteration (AFL paper, Table 2).
_base_ = [
    'mmpose::body_2d_keypoint/topdown_heatmap/coco/'
    'td-hm_hrnet-w32_8xb64-210e_coco-256x192.py'
]

custom_imports = dict(imports=['mmpose_afl'], allow_failed_imports=False)

model = dict(
    head=dict(
        loss=dict(
            _delete_=True,
            type='AFLHeatmapLoss',
            base_loss=dict(type='KeypointMSELoss', use_target_weight=True),
            critic=dict(type='AFLCritic', num_keypoints=17))))
custom_hooks = [dict(type='SyncBuffersHook'), dict(type='AFLCriticHook')]
