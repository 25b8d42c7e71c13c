# Online hard keypoint mining (stock MMPose KeypointOHKMMSELoss) on the
# synthetic COCO data: the CPU-sized baseline with only its loss changed, as
# the hard-example peer a user already has in MMPose. Per sample, the MSE of
# its `topk` hardest keypoints (MMPose's default, 8 of 17) is kept and the
# rest dropped. docs/hard_examples.md compares it with AFL.
_base_ = ['../baseline/td-hm_res18_1xb16-20e_synthetic-coco-128x96.py']

custom_imports = dict(imports=['mmpose_afl'], allow_failed_imports=False)

model = dict(
    head=dict(
        loss=dict(
            _delete_=True, type='KeypointOHKMMSELoss',
            use_target_weight=True)))
