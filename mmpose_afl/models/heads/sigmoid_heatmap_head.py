"""A heatmap head whose outputs are logits (for losses that apply the sigmoid
themselves, such as :class:`HSMLoss`; docs/hsm.md)."""
from typing import Optional, Tuple

import torch
from mmengine.structures import PixelData
from mmpose.evaluation.functional import pose_pck_accuracy
from mmpose.models.heads import HeatmapHead
from mmpose.registry import MODELS
from mmpose.utils.tensor_utils import to_numpy
from mmpose.utils.typing import (ConfigType, Features, InstanceList,
                                 OptSampleList, Predictions)
from torch import Tensor

from .sahr_head import check_gaussian_heatmap_decoder


@MODELS.register_module()
class SigmoidHeatmapHead(HeatmapHead):
    """:class:`HeatmapHead` for losses that take logits (e.g.
    :class:`HSMLoss`, ``Δ = |sigmoid(pred) - gt|``).

    Layers, arguments, state-dict keys, ``forward`` (raw logits, also for
    ``mode='tensor'``) and the loss call are those of :class:`HeatmapHead`;
    only what turns logits into heatmaps differs:

    - :meth:`decode` applies the sigmoid before the codec decodes, so
      keypoint scores (the heatmap maxima for ``MSRAHeatmap`` /
      ``UDPHeatmap``) lie in [0, 1] and DARK's log-domain refinement sees
      positive heatmaps.
    - Flip test (:meth:`predict`) averages the two passes' logits, as
      :class:`HeatmapHead` averages its raw outputs, and the sigmoid is
      applied once to the average; with ``output_heatmaps=True`` the
      returned heatmaps are these sigmoid heatmaps (what was decoded).
    - ``acc_pose`` in :meth:`loss` is the PCK of the sigmoid heatmaps
      (MMPose's heatmap PCK treats maxima <= 0 as missing keypoints).

    The decoder must be a codec of Gaussian heatmaps in [0, 1]
    (``MSRAHeatmap``, plain or DARK, or ``UDPHeatmap`` with
    ``heatmap_type='gaussian'``), checked at build time.

    **Initialisation.** :class:`HeatmapHead` initialises its last conv with
    bias 0, which for logits means ``sigmoid = 0.5`` on every pixel: the
    first steps then push all logits far down, where the sigmoid's slope
    (and so every gradient, the peaks' included) vanishes, and training
    stalls at all-zero heatmaps (docs/hsm.md). As for
    the focal loss (Lin et al.) and CenterNet, the last conv's bias starts
    at the background prior ``log(p / (1 - p))`` with ``p = prior_prob``
    (0.1: roughly the background level at which, for a σ = 2 Gaussian on a
    24×32 heatmap, HSM's cubic pull-down of the background pixels and its
    pull-up of the peak pixels balance, so training starts near that
    balance instead of collapsing towards it). It is set through
    ``init_cfg``, so it survives the runner's ``init_weights()``;
    checkpoints (``load_from``, ``--resume``) overwrite it as usual.

    Args:
        prior_prob (float): Initial ``sigmoid`` of the heatmaps, in (0, 1).
            Used only when ``init_cfg`` is not given. Defaults to 0.1
        All others as :class:`HeatmapHead`; the default ``loss`` is
        ``dict(type='HSMLoss', use_target_weight=True)``.
    """
    # what HSMLoss.check_head looks for when this head takes the loss
    applies_sigmoid = True

    def __init__(self,
                 *args,
                 loss: ConfigType = dict(
                     type='HSMLoss', use_target_weight=True),
                 prior_prob: float = 0.1,
                 init_cfg: Optional[ConfigType] = None,
                 **kwargs):
        if not 0 < prior_prob < 1:
            raise ValueError('SigmoidHeatmapHead: `prior_prob` must lie in '
                             f'(0, 1), e.g. 0.1; got {prior_prob}')
        if init_cfg is None:
            init_cfg = [
                dict(
                    type='Normal',
                    layer=['Conv2d', 'ConvTranspose2d'],
                    std=0.001,
                    override=dict(
                        type='Normal',
                        name='final_layer',
                        std=0.001,
                        bias_prob=prior_prob)),
                dict(type='Constant', layer='BatchNorm2d', val=1)
            ]
        super().__init__(*args, loss=loss, init_cfg=init_cfg, **kwargs)
        check_gaussian_heatmap_decoder(self)

    def decode(self, batch_outputs: Tensor) -> InstanceList:
        """Decode keypoints from the logits ``batch_outputs`` [B, K, H, W]
        after the sigmoid."""
        return super().decode(batch_outputs.sigmoid())

    def predict(self,
                feats: Features,
                batch_data_samples: OptSampleList,
                test_cfg: ConfigType = {}) -> Predictions:
        """As :meth:`HeatmapHead.predict`; heatmaps returned with
        ``test_cfg['output_heatmaps']`` are sigmoid heatmaps in [0, 1]."""
        preds = super().predict(feats, batch_data_samples, test_cfg)
        if not isinstance(preds, tuple):
            return preds
        preds, pred_fields = preds
        return preds, [
            PixelData(heatmaps=field.heatmaps.sigmoid())
            for field in pred_fields
        ]

    def loss(self,
             feats: Tuple[Tensor],
             batch_data_samples: OptSampleList,
             train_cfg: ConfigType = {}) -> dict:
        """As :meth:`HeatmapHead.loss` (the loss gets the logits);
        ``acc_pose`` is computed on the sigmoid heatmaps."""
        logits = self.forward(feats)
        gt_heatmaps = torch.stack(
            [d.gt_fields.heatmaps for d in batch_data_samples])
        keypoint_weights = torch.cat([
            d.gt_instance_labels.keypoint_weights for d in batch_data_samples
        ])
        losses = dict(
            loss_kpt=self.loss_module(logits, gt_heatmaps, keypoint_weights))

        if train_cfg.get('compute_acc', True):
            _, avg_acc, _ = pose_pck_accuracy(
                # float: numpy has no bfloat16 (autocast's CPU dtype)
                output=to_numpy(logits.float().sigmoid()),
                target=to_numpy(gt_heatmaps),
                mask=to_numpy(keypoint_weights) > 0)
            losses.update(
                acc_pose=torch.tensor(avg_acc, device=gt_heatmaps.device))
        return losses
