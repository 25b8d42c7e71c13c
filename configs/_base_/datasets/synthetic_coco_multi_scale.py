# The stock MMPose bottom-up (associative embedding, HRNet-w32 512x512)
# COCO config pointed at the multi-person synthetic COCO-format data that
# `python tools/make_synthetic_data.py --kind coco --layout multi_scale`
# writes (2-4 people of clearly different sizes per image). Only data roots
# and the evaluator's annotation file change.
_base_ = [
    'mmpose::body_2d_keypoint/associative_embedding/coco/'
    'ae_hrnet-w32_8xb24-300e_coco-512x512.py'
]

data_root = 'data/synthetic_coco_multi_scale/'

train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader

val_evaluator = dict(
    ann_file=data_root + 'annotations/person_keypoints_val2017.json')
test_evaluator = val_evaluator
