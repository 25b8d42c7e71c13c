# The stock MMPose COCO config (ResNet-50, 256x192) pointed at the synthetic
# COCO-format data that `python tools/make_synthetic_data.py --kind coco`
# writes. Only data roots, the detection-box file (ground-truth boxes are
# used instead) and the evaluator's annotation file change.
_base_ = [
    'mmpose::body_2d_keypoint/topdown_heatmap/coco/'
    'td-hm_res50_8xb64-210e_coco-256x192.py'
]

data_root = 'data/synthetic_coco/'

train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root, bbox_file=None))
test_dataloader = val_dataloader

val_evaluator = dict(
    ann_file=data_root + 'annotations/person_keypoints_val2017.json')
test_evaluator = val_evaluator
