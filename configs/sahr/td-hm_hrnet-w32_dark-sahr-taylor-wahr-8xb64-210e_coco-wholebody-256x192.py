# SAHR + WAHR as
# td-hm_hrnet-w32_dark-sahr-wahr-8xb64-210e_coco-wholebody-256x192.py, with
# the target of the official SWAHR code (greatlog/SWAHR-HumanPose): the
# 2nd-order Taylor expansion of gt^(1+s) in s (see SAHRHead's
# `scale_target` for where it departs from the exact power). The Gaussian
# support stays the 3-sigma disc: the official code's `gt > 0`
# (support_floor=0) assumes cut-off Gaussians, and DARK's are never cut off.
_base_ = [
    './td-hm_hrnet-w32_dark-sahr-wahr-8xb64-210e_coco-wholebody-256x192.py'
]

model = dict(head=dict(scale_target='taylor'))
