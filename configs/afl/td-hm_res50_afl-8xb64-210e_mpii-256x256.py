# Adversarial Focal Loss on the stock MMPose MPII ResNet-50 256x256 recipe
# (the paper's Table 1 model at MMPose's MPII input size): the head's MSE loss
# is wrapped by AFLHeatmapLoss and AFLCriticHook trains the critic every
# iteration (AFL paper, Table 1).
_base_ = [
    'mmpose::body_2d_keypoint/topdown_heatmap/mpii/'
    'td-hm_res50_8xb64-210e_mpii-256x256.py'
]

custom_imports = dict(imports=['mmpose_afl'], allow_failed_imports=False)

model = dict(
    head=dict(
        loss=dict(
            _delete_=True,
            type='AFLHeatmapLoss',
            base_loss=dict(type='KeypointMSELoss', use_target_weight=True),
            critic=dict(type='AFLCritic', num_keypoints=16))))
custom_hooks = [dict(type='SyncBuffersHook'), dict(type='AFLCriticHook')]
