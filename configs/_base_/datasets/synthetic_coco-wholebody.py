# The stock MMPose COCO-WholeBody config (HRNet-w32 + DARK, 256x192) pointed
# at the synthetic data that
# `python tools/make_synthetic_data.py --kind wholebody` writes. Only data
# roots, the detection-box file (ground-truth boxes are used instead) and the
# evaluator's annotation file change, and the evaluator is the per-part
# CocoWholeBodyPartMetric (same numbers as the stock CocoWholeBodyMetric, plus
# body/foot/face/hand AP and AR as metric values).
_base_ = [
    'mmpose::wholebody_2d_keypoint/topdown_heatmap/coco-wholebody/'
    'td-hm_hrnet-w32_dark-8xb64-210e_coco-wholebody-256x192.py'
]

data_root = 'data/synthetic_coco_wholebody/'

train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root, bbox_file=None))
test_dataloader = val_dataloader

custom_imports = dict(imports=['mmpose_afl'], allow_failed_imports=False)

val_evaluator = dict(
    type='CocoWholeBodyPartMetric',
    ann_file=data_root + 'annotations/coco_wholebody_val_v1.0.json')
test_evaluator = val_evaluator
