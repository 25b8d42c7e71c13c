# SAHR + WAHR as td-hm_hrnet-w32_sahr-wahr-8xb64-210e_coco-256x192.py, with
# the target of the official SWAHR code (greatlog/SWAHR-HumanPose): the
# 2nd-order Taylor expansion of gt^(1+s) in s, to reproduce its numbers (see
# SAHRHead's `scale_target` for where it departs from the exact power). The
# Gaussian support stays the 3-sigma disc; support_floor=0 (head and loss)
# would give the official `gt > 0`, here the standard encoder's 13x13 patch
# (the official code's patch is 15x15).
_base_ = ['./td-hm_hrnet-w32_sahr-wahr-8xb64-210e_coco-256x192.py']

model = dict(head=dict(scale_target='taylor'))
