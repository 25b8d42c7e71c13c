# Adversarial Focal Loss on the stock MMPose RTMPose-s COCO 256x192 recipe:
# the SimCC head's KLDiscretLoss is wrapped by AFLSimCCLoss (its topology is
# that of the expected SimCC coordinates) and AFLCriticHook trains the critic
# every iteration, next to the stock hooks.
_base_ = ['mmpose::body_2d_keypoint/rtmpose/coco/'
          'rtmpose-s_8xb256-420e_coco-256x192.py']

custom_imports = dict(imports=['mmpose_afl'], allow_failed_imports=False)

model = dict(
    head=dict(
        loss=dict(
            _delete_=True,
            type='AFLSimCCLoss',
            base_loss=dict(
                type='KLDiscretLoss',
                use_target_weight=True,
                beta=10.,
                label_softmax=True),
            critic=dict(type='AFLCritic', num_keypoints=17))))
custom_hooks = _base_.custom_hooks + [dict(type='AFLCriticHook')]
