# Adversarial Focal Loss on the stock MMPose RTMPose-m COCO-WholeBody 256x192
# recipe: the SimCC head's KLDiscretLoss is wrapped by AFLSimCCLoss with a
# critic on the 133 keypoints' topology, and AFLCriticHook trains the critic
# every iteration, next to the stock hooks (EMA, pipeline switch).
_base_ = ['mmpose::wholebody_2d_keypoint/rtmpose/coco-wholebody/'
          'rtmpose-m_8xb64-270e_coco-wholebody-256x192.py']

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
            critic=dict(type='AFLCritic', num_keypoints=133))))
custom_hooks = _base_.custom_hooks + [dict(type='AFLCriticHook')]
