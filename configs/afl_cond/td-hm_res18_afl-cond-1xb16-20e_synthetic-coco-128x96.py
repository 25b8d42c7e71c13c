# AFL with a conditional critic on the synthetic COCO data: the AFL demo with
# AFLConditionalCritic, which scores the predicted topology together with
# the topology of the sample's own ground truth (real pairs (t(y), t(y)),
# fake pairs (t(y'), t(y))), so that the difficulty measures how far this
# prediction is from what this person should look like. Everything else is
# the AFL demo's. docs/hard_examples.md explains the design.
_base_ = ['../afl/td-hm_res18_afl-1xb16-20e_synthetic-coco-128x96.py']

model = dict(
    head=dict(
        loss=dict(
            critic=dict(
                _delete_=True, type='AFLConditionalCritic',
                num_keypoints=17))))
