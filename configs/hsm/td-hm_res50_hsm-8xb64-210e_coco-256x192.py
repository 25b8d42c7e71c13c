# Hard Sample Mining loss on the stock MMPose COCO ResNet-50 256x192 recipe.
_base_ = [
    'mmpose::body_2d_keypoint/topdown_heatmap/coco/'
    'td-hm_res50_8xb64-210e_coco-256x192.py'
]

custom_imports = dict(imports=['mmpose_afl'], allow_failed_imports=False)

# HSM loss on logits; SigmoidHeatmapHead applies the sigmoid before decoding
# so that keypoint scores lie in [0, 1] (flip test averages logits).
model = dict(
    head=dict(
        type='SigmoidHeatmapHead',
        loss=dict(type='HSMLoss', beta=1.0, gamma=2.0,
                  use_target_weight=True)))
