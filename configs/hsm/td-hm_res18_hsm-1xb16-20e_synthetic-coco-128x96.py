# Hard Sample Mining loss demo on the synthetic COCO data (CPU-sized baseline,
# only the head and loss change).
_base_ = ['../baseline/td-hm_res18_1xb16-20e_synthetic-coco-128x96.py']

custom_imports = dict(imports=['mmpose_afl'], allow_failed_imports=False)

# HSM loss on logits; SigmoidHeatmapHead applies the sigmoid before decoding
# so that keypoint scores lie in [0, 1] (flip test averages logits).
model = dict(
    head=dict(
        type='SigmoidHeatmapHead',
        loss=dict(type='HSMLoss', beta=1.0, gamma=2.0,
                  use_target_weight=True)))
