# Adversarial Focal Loss on the stock MMPose RLE ResNet-50 COCO 256x192
# recipe: the RLEHead's RLELoss is wrapped by AFLRegressionLoss (its topology
# is that of the regressed coordinates; the input size comes from the head's
# decoder) and AFLCriticHook trains the critic every iteration.
_base_ = ['mmpose::body_2d_keypoint/topdown_regression/coco/'
          'td-reg_res50_rle-8xb64-210e_coco-256x192.py']

custom_imports = dict(imports=['mmpose_afl'], allow_failed_imports=False)

model = dict(
    head=dict(
        loss=dict(
            _delete_=True,
            type='AFLRegressionLoss',
            base_loss=dict(type='RLELoss', use_target_weight=True),
            critic=dict(type='AFLCritic', num_keypoints=17))))
custom_hooks = _base_.custom_hooks + [dict(type='AFLCriticHook')]
