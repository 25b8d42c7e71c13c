"""Scale-Adaptive Heatmap Regression head (SAHR) of SWAHR (Luo et al.,
CVPR 2021) for top-down MMPose models, as in the official code
(greatlog/SWAHR-HumanPose); docs/sahr_wahr.md."""
from typing import Optional, Sequence, Tuple, Union

import torch
from mmpose.codecs import MSRAHeatmap, UDPHeatmap
from mmpose.evaluation.functional import pose_pck_accuracy
from mmpose.models.heads import HeatmapHead
from mmpose.registry import MODELS
from mmpose.utils.tensor_utils import to_numpy
from mmpose.utils.typing import ConfigType, OptConfigType, OptSampleList
from torch import Tensor

from ..losses.gaussian_support import GAUSSIAN_SUPPORT_FLOOR
from .sahr_branch import ScaleAdaptiveMixin, final_layer_channels

OptIntSeq = Optional[Sequence[int]]


def check_gaussian_heatmap_decoder(head: HeatmapHead) -> None:
    """Raise if ``head.decoder`` is set and is not a codec whose heatmaps
    are Gaussians with values in [0, 1] (``MSRAHeatmap``, plain or
    unbiased/DARK, or ``UDPHeatmap`` with ``heatmap_type='gaussian'``)."""
    decoder = head.decoder
    if decoder is None or isinstance(
            decoder, MSRAHeatmap) or (isinstance(decoder, UDPHeatmap)
                                      and decoder.heatmap_type == 'gaussian'):
        return
    got = type(decoder).__name__
    if isinstance(decoder, UDPHeatmap):
        got += f" with heatmap_type='{decoder.heatmap_type}'"
    raise ValueError(
        f'{type(head).__name__}: `decoder.type` must be a codec of Gaussian '
        "heatmaps in [0, 1]: 'MSRAHeatmap' or 'UDPHeatmap' with "
        f"heatmap_type='gaussian'; got {got}")


@MODELS.register_module()
class SAHRHead(ScaleAdaptiveMixin, HeatmapHead):
    """Top-down heatmap head with Scale-Adaptive Heatmap Regression.

    A :class:`HeatmapHead` (same layers, same state-dict keys, so a stock
    checkpoint loads into it with only ``scale_layers.*`` missing) plus a
    scale branch that predicts one scale map ``s`` per keypoint from the
    features the final layer sees (after the deconv and conv layers, as the
    official code takes the features after the deconv layers)::

        Conv1x1(C -> K) + BN + ReLU + depthwise ConvNxN (K -> K)

    with no activation on ``s`` and the last conv zero-initialised, so that
    ``s = 0`` at the start (both at construction and after
    ``init_weights()``).

    Training (:meth:`loss`): the target becomes ``gt^(1 + s)`` inside the
    Gaussian support and 0 outside (see :func:`scale_heatmaps`; ``s`` is not
    detached), the heatmap loss (``loss``, WAHR by default) compares the
    predicted heatmaps with it, and the scale regulariser
    ``mean_{B,K,H,W}(s^2 [gt in support]) * scale_loss_weight`` is logged as
    ``loss_scale``. The support is ``gt >= support_floor``
    (:func:`gaussian_support`), by default the disc of radius 3 sigma under
    the standard, UDP and DARK encoders alike; with ``gt > 0``
    (``support_floor=0``) a DARK target, which is never cut off, would put
    the regulariser on most of the map and make the target's far tails
    part of the Gaussian the scale reshapes. A loss that
    has its own ``support_floor`` (:class:`WAHRLoss`) must use the same
    one. If the loss's ``forward`` takes ``weight_target``
    (:class:`WAHRLoss` does), the original ``gt`` is passed there so that
    the WAHR weight comes from the original heatmaps, as in the official
    code; any other MMPose heatmap loss is called with the scaled target
    only (e.g. ``KeypointMSELoss`` for SAHR without WAHR).

    Inference (``forward``, :meth:`predict`): the scale branch is not run;
    heatmaps are computed and decoded exactly as by :class:`HeatmapHead`
    (flip test, DARK and UDP codecs included).

    Args:
        in_channels (int): Number of channels in the input feature map
        out_channels (int): Number of keypoints K
        deconv_out_channels (Sequence[int], optional): As in
            :class:`HeatmapHead`. Defaults to ``(256, 256, 256)``
        deconv_kernel_sizes (Sequence[int], optional): As in
            :class:`HeatmapHead`. Defaults to ``(4, 4, 4)``
        conv_out_channels (Sequence[int], optional): As in
            :class:`HeatmapHead`. Defaults to ``None``
        conv_kernel_sizes (Sequence[int], optional): As in
            :class:`HeatmapHead`. Defaults to ``None``
        final_layer (dict): As in :class:`HeatmapHead`. Defaults to
            ``dict(kernel_size=1)``
        scale_kernel_size (int): Kernel size of the depthwise conv of the
            scale branch; odd. Defaults to 9 (official code)
        scale_target (str): How ``gt^(1 + s)`` is computed: ``'power'``
            (exact power, ``1 + s`` clamped to ``min_scale_exponent``; the
            paper's formula, for which ``sigma_eff = sigma / sqrt(1 + s)``
            holds exactly) or ``'taylor'`` (the official code's 2nd-order
            expansion, to reproduce it). The expansion agrees with the
            power only while ``|s ln gt|`` is small: on a 3-sigma support
            ``ln gt`` reaches -4.5, and past ``|s ln gt| = 1`` its quadratic
            term raises the tails, so a positive ``s`` can widen the target
            where the paper narrows it (docs/sahr_wahr.md). Defaults to
            ``'power'``
        min_scale_exponent (float): Lower clamp of ``1 + s`` in ``'power'``
            mode; must be > 0 (at 0 the target would become 1 everywhere in
            the support). Where the clamp is active the heatmap loss gives
            no gradient to ``s`` and the regulariser pulls it back.
            Defaults to 0.1 (``sigma_eff <= 3.2 sigma``)
        scale_loss_weight (float): Weight of the scale regulariser; >= 0.
            Defaults to 1.0 (official code)
        support_floor (float): The smallest ``gt`` inside the Gaussian
            support, in [0, 1); 0 gives ``gt > 0``. Defaults to
            :data:`GAUSSIAN_SUPPORT_FLOOR` (``exp(-4.5)`` = 0.0111)
        loss (Config): Config of the heatmap loss. Defaults to
            ``dict(type='WAHRLoss', use_target_weight=True)``
        decoder (Config, optional): A codec of Gaussian heatmaps in [0, 1]
            (``MSRAHeatmap``, ``UDPHeatmap`` with ``heatmap_type='gaussian'``)
            or ``None``. Defaults to ``None``
        init_cfg (Config, optional): Config to control the initialization.
            Defaults to :attr:`default_init_cfg` of :class:`HeatmapHead`
    """

    def __init__(self,
                 in_channels: Union[int, Sequence[int]],
                 out_channels: int,
                 deconv_out_channels: OptIntSeq = (256, 256, 256),
                 deconv_kernel_sizes: OptIntSeq = (4, 4, 4),
                 conv_out_channels: OptIntSeq = None,
                 conv_kernel_sizes: OptIntSeq = None,
                 final_layer: dict = dict(kernel_size=1),
                 scale_kernel_size: int = 9,
                 scale_target: str = 'power',
                 min_scale_exponent: float = 0.1,
                 scale_loss_weight: float = 1.0,
                 support_floor: float = GAUSSIAN_SUPPORT_FLOOR,
                 loss: ConfigType = dict(
                     type='WAHRLoss', use_target_weight=True),
                 decoder: OptConfigType = None,
                 init_cfg: OptConfigType = None):
        super().__init__(
            in_channels=in_channels,
            out_channels=out_channels,
            deconv_out_channels=deconv_out_channels,
            deconv_kernel_sizes=deconv_kernel_sizes,
            conv_out_channels=conv_out_channels,
            conv_kernel_sizes=conv_kernel_sizes,
            final_layer=final_layer,
            loss=loss,
            decoder=decoder,
            init_cfg=init_cfg)
        check_gaussian_heatmap_decoder(self)
        self.init_scale_branch(
            final_layer_channels(in_channels, deconv_out_channels,
                                 conv_out_channels), out_channels,
            self.loss_module, 'loss', scale_kernel_size, scale_target,
            min_scale_exponent, scale_loss_weight, support_floor)

    def forward_with_scales(self,
                            feats: Tuple[Tensor]) -> Tuple[Tensor, Tensor]:
        """Heatmaps and scale maps, both [B, K, H, W]."""
        x = self.conv_layers(self.deconv_layers(feats[-1]))
        return self.final_layer(x), self.scale_layers(x)

    def loss(self,
             feats: Tuple[Tensor],
             batch_data_samples: OptSampleList,
             train_cfg: ConfigType = {}) -> dict:
        """Losses of a batch: ``loss_kpt`` (heatmap loss against the
        scale-adapted target), ``loss_scale`` (scale regulariser) and, unless
        ``train_cfg['compute_acc']`` is ``False``, ``acc_pose`` (PCK of the
        heatmaps against the original targets, as :class:`HeatmapHead`).

        Args:
            feats (Tuple[Tensor]): The multi-stage features
            batch_data_samples (List[:obj:`PoseDataSample`]): The batch
                data samples
            train_cfg (dict): The runtime config for training process.
                Defaults to {}

        Returns:
            dict: A dictionary of losses.
        """
        heatmaps, scales = self.forward_with_scales(feats)
        gt_heatmaps = torch.stack(
            [d.gt_fields.heatmaps for d in batch_data_samples])
        keypoint_weights = torch.cat([
            d.gt_instance_labels.keypoint_weights for d in batch_data_samples
        ])

        losses = self.sahr_losses(self.loss_module, heatmaps, scales,
                                  gt_heatmaps, keypoint_weights)

        if train_cfg.get('compute_acc', True):
            _, avg_acc, _ = pose_pck_accuracy(  # float: numpy has no bf16
                output=to_numpy(heatmaps.float()),
                target=to_numpy(gt_heatmaps.float()),
                mask=to_numpy(keypoint_weights) > 0)
            losses.update(
                acc_pose=torch.tensor(avg_acc, device=gt_heatmaps.device))
        return losses
