# Adversarial Focal Loss on the CPU-sized RLE baseline (ResNet-18, synthetic
# COCO data, 128x96): its RLELoss wrapped by AFLRegressionLoss, and the critic
# trained every iteration by AFLCriticHook.
_base_ = ['../baseline/td-reg_res18_rle-1xb16-20e_synthetic-coco-128x96.py']

custom_imports = dict(imports=['mmpose_afl'], allow_failed_imports=False)

model = dict(
    head=dict(
        loss=dict(
            _delete_=True,
            type='AFLRegressionLoss',
            base_loss=dict(type='RLELoss', use_target_weight=True),
            critic=dict(type='AFLCritic', num_keypoints=17))))
custom_hooks = _base_.custom_hooks + [dict(type='AFLCriticHook')]
