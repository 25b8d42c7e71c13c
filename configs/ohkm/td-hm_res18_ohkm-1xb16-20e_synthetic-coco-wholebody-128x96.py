# Online hard keypoint mining (stock MMPose KeypointOHKMMSELoss) on the
# synthetic COCO-WholeBody data: the CPU-sized WholeBody baseline with only
# its loss changed, as the hard-example peer a user already has in MMPose.
# MMPose's default `topk` (8) is kept unchanged: of 133 keypoints only the 8
# with the largest MSE per sample are trained at each step, which is what a
# user gets by switching the loss type. docs/hard_examples.md compares it
# with AFL.
_base_ = [
    '../baseline/td-hm_res18_1xb16-20e_synthetic-coco-wholebody-128x96.py'
]

custom_imports = dict(imports=['mmpose_afl'], allow_failed_imports=False)

model = dict(
    head=dict(
        loss=dict(
            _delete_=True, type='KeypointOHKMMSELoss',
            use_target_weight=True)))
