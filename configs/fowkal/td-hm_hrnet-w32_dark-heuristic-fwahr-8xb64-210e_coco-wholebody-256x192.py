# FoWKAL ablation (e) of Table 2: the heuristic loss with FWAHR pixel weights.
# On the stock MMPose COCO-WholeBody HRNet-w32 + DARK 256x192 recipe; the
# per-part metric returns body/foot/face/hand/whole-body AP and AR.
_base_ = [
    'mmpose::wholebody_2d_keypoint/topdown_heatmap/coco-wholebody/'
    'td-hm_hrnet-w32_dark-8xb64-210e_coco-wholebody-256x192.py'
]

custom_imports = dict(imports=['mmpose_afl'], allow_failed_imports=False)

model = dict(
    head=dict(
        loss=dict(
            type='FoWKALLoss',
            num_keypoints=133,  # the head's out_channels, checked at build
            kaf='heuristic',
            # the paper's plain AWing + MSE: no running-mean normalisation
            normalize=False,
            weighting='fwahr',
            gamma=0.01,
            tau=1.0,
            use_target_weight=True)))

val_evaluator = dict(type='CocoWholeBodyPartMetric')
test_evaluator = val_evaluator
