# As ae_hrnet-w32_sahr-wahr-8xb24-300e_coco-512x512.py with the official
# code's target: the 2nd-order Taylor expansion of gt^(1+s) in s (see
# SAHRHead's `scale_target` on where it departs from the exact power).
_base_ = ['./ae_hrnet-w32_sahr-wahr-8xb24-300e_coco-512x512.py']

model = dict(head=dict(scale_target='taylor'))
