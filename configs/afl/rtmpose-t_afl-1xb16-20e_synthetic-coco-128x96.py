# Adversarial Focal Loss on the CPU-sized RTMPose-t baseline (synthetic COCO
# data, 128x96): its KLDiscretLoss wrapped by AFLSimCCLoss, and the critic
# trained every iteration by AFLCriticHook, next to the pipeline switch.
_base_ = ['../baseline/rtmpose-t_1xb16-20e_synthetic-coco-128x96.py']

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
