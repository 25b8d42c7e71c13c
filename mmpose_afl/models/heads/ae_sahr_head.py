"""Bottom-up associative-embedding heads: MMPose's AE head made trainable
on images of several people, and SAHR + WAHR (Luo et al., CVPR 2021) on it,
the setting of the paper and its official code (on HigherHRNet);
docs/sahr_wahr.md."""
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
from mmpose.codecs import AssociativeEmbedding
from mmpose.models.heads import AssociativeEmbeddingHead
from mmpose.registry import MODELS
from mmpose.utils.typing import ConfigType, OptConfigType, OptSampleList
from torch import Tensor

from ... import codecs  # noqa: F401  (registers AssociativeEmbeddingLabels)
from ..losses.gaussian_support import GAUSSIAN_SUPPORT_FLOOR
from ..losses.per_sample_loss import check_heatmap_shapes
from .sahr_branch import ScaleAdaptiveMixin, final_layer_channels

OptIntSeq = Optional[Sequence[int]]


@MODELS.register_module()
class MaskedAEHead(AssociativeEmbeddingHead):
    """:class:`AssociativeEmbeddingHead` whose keypoint loss is masked by
    the heatmap mask only, as in the AE / HigherHRNet / SWAHR code.

    The stock head passes the per-person ``keypoint_weights`` ([N, K] per
    image, [sum N, K] for the batch) to the keypoint loss as weights of the
    [B, K] heatmap channels, which holds only when every image has exactly
    one person: any other batch fails the loss's shape check. One heatmap
    channel holds all people, so no person's weight can be applied to it;
    this head gives the keypoint loss ``heatmap_mask`` ([B, 1, H, W], 0 on
    regions of unlabelled or crowd people, from ``BottomupGetHeatmapMask``)
    as ``mask`` and no target weights. Everything else (layers, state-dict
    keys, the tag loss, ``forward``, ``predict`` and decoding) is the stock
    head's. Train it with a codec that packs ``keypoint_indices``
    (:class:`AssociativeEmbeddingLabels`).

    Args: as :class:`AssociativeEmbeddingHead`.
    """

    def _features(self, feats: Tuple[Tensor]) -> Tensor:
        """The features the final layer sees, [B, C, H, W]."""
        return self.conv_layers(self.deconv_layers(feats[-1]))

    def _heatmap_losses(self, features: Tensor, heatmaps: Tensor,
                        gt_heatmaps: Tensor,
                        gt_masks: Tensor) -> Dict[str, Tensor]:
        """``loss_kpt``: the keypoint loss of ``heatmaps`` against
        ``gt_heatmaps`` on the pixels of ``gt_masks`` (shapes checked first,
        whatever the loss, so a mismatch names both shapes)."""
        check_heatmap_shapes(
            type(self).__name__, heatmaps, gt_heatmaps, mask=gt_masks)
        return dict(
            loss_kpt=self.loss_module.keypoint_loss(heatmaps, gt_heatmaps,
                                                    None, gt_masks))

    def loss(self,
             feats: Tuple[Tensor],
             batch_data_samples: OptSampleList,
             train_cfg: ConfigType = {}) -> dict:
        """Losses of a batch: ``loss_kpt`` (see :meth:`_heatmap_losses`),
        ``loss_pull`` and ``loss_push`` (the stock tag loss).

        Args:
            feats (Tuple[Tensor]): The multi-stage features
            batch_data_samples (List[:obj:`PoseDataSample`]): The batch
                data samples
            train_cfg (dict): The runtime config for training process.
                Defaults to {}

        Returns:
            dict: A dictionary of losses.
        """
        features = self._features(feats)
        output = self.final_layer(features)
        heatmaps = output[:, :self.num_keypoints]
        tags = output[:, self.num_keypoints:]
        if not self.tag_per_keypoint:
            tags = tags.repeat((1, self.num_keypoints, 1, 1))

        gt_heatmaps = torch.stack(
            [d.gt_fields.heatmaps for d in batch_data_samples])
        gt_masks = torch.stack(
            [d.gt_fields.heatmap_mask for d in batch_data_samples])
        keypoint_indices = [
            d.gt_instance_labels.keypoint_indices for d in batch_data_samples
        ]
        losses = self._heatmap_losses(features, heatmaps, gt_heatmaps,
                                      gt_masks)
        losses['loss_pull'], losses['loss_push'] = self.loss_module.tag_loss(
            tags, keypoint_indices)
        return losses


@MODELS.register_module()
class AESAHRHead(ScaleAdaptiveMixin, MaskedAEHead):
    """Bottom-up associative-embedding head with Scale-Adaptive Heatmap
    Regression.

    A :class:`MaskedAEHead` (the stock :class:`AssociativeEmbeddingHead`'s
    layers and state-dict keys, so a stock AE checkpoint loads with only
    ``scale_layers.*`` missing) plus the SAHR scale branch of
    :class:`ScaleAdaptiveMixin`: one scale map per keypoint type from the
    features the final layer sees, ``s = 0`` at the start.

    Training (:meth:`loss`): the codec renders all people of an image into
    one Gaussian heatmap per keypoint type (their maximum), and that heatmap
    is scaled per pixel, ``gt^(1 + s)`` inside the Gaussian support
    (:func:`scale_heatmaps`), so each person's Gaussian gets the scale the
    map predicts at its pixels. The keypoint loss (WAHR by default, with its
    weight from the original heatmaps) is taken on the pixels of
    ``heatmap_mask``, and so is the regulariser
    ``mean_{B,K,H,W}(s^2 [gt in support] mask) * scale_loss_weight``
    (``loss_scale``), as in the official bottom-up code; the tag loss
    (``loss_pull``, ``loss_push``) is the stock one, unchanged.

    Inference (``forward``, :meth:`predict`): the scale branch is not run;
    heatmaps and tags are computed and decoded exactly as by the stock
    head (flip test and multi-scale test included).

    Args:
        in_channels (int | Sequence[int]): As in
            :class:`AssociativeEmbeddingHead`
        num_keypoints (int): Number of keypoint types K
        tag_dim (int): As in :class:`AssociativeEmbeddingHead`. Defaults to
            1
        tag_per_keypoint (bool): As in :class:`AssociativeEmbeddingHead`.
            Defaults to ``True``
        deconv_out_channels (Sequence[int], optional): Defaults to
            ``(256, 256, 256)``
        deconv_kernel_sizes (Sequence[int], optional): Defaults to
            ``(4, 4, 4)``
        conv_out_channels (Sequence[int], optional): Defaults to ``None``
        conv_kernel_sizes (Sequence[int], optional): Defaults to ``None``
        final_layer (dict): Defaults to ``dict(kernel_size=1)``
        scale_kernel_size (int): Kernel size of the depthwise conv of the
            scale branch; odd. Defaults to 9 (official code)
        scale_target (str): ``'power'`` (exact ``gt^(1 + s)``) or
            ``'taylor'`` (the official code's 2nd-order expansion), see
            :class:`SAHRHead`. Defaults to ``'power'``
        min_scale_exponent (float): Lower clamp of ``1 + s`` in ``'power'``
            mode; > 0. Defaults to 0.1
        scale_loss_weight (float): Weight of the scale regulariser; >= 0.
            Defaults to 1.0 (official code)
        support_floor (float): The smallest ``gt`` inside the Gaussian
            support, in [0, 1); the keypoint loss's own ``support_floor``
            (:class:`WAHRLoss`) must be the same. Defaults to
            :data:`GAUSSIAN_SUPPORT_FLOOR` (``exp(-4.5)``)
        keypoint_loss (Config): The heatmap loss. Defaults to
            ``dict(type='WAHRLoss')``
        tag_loss (Config): Defaults to
            ``dict(type='AssociativeEmbeddingLoss')``
        decoder (Config, optional): An ``AssociativeEmbedding`` codec (or
            :class:`AssociativeEmbeddingLabels`) or ``None``. Defaults to
            ``None``
        init_cfg (Config, optional): Defaults to the stock head's
    """

    def __init__(self,
                 in_channels: Union[int, Sequence[int]],
                 num_keypoints: int,
                 tag_dim: int = 1,
                 tag_per_keypoint: bool = True,
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
                 keypoint_loss: ConfigType = dict(type='WAHRLoss'),
                 tag_loss: ConfigType = dict(type='AssociativeEmbeddingLoss'),
                 decoder: OptConfigType = None,
                 init_cfg: OptConfigType = None):
        super().__init__(
            in_channels=in_channels,
            num_keypoints=num_keypoints,
            tag_dim=tag_dim,
            tag_per_keypoint=tag_per_keypoint,
            deconv_out_channels=deconv_out_channels,
            deconv_kernel_sizes=deconv_kernel_sizes,
            conv_out_channels=conv_out_channels,
            conv_kernel_sizes=conv_kernel_sizes,
            final_layer=final_layer,
            keypoint_loss=keypoint_loss,
            tag_loss=tag_loss,
            decoder=decoder,
            init_cfg=init_cfg)
        if self.decoder is not None and not isinstance(self.decoder,
                                                       AssociativeEmbedding):
            raise ValueError(
                'AESAHRHead: `decoder.type` must be an associative-embedding '
                "codec ('AssociativeEmbedding' or "
                f"'AssociativeEmbeddingLabels'), got "
                f'{type(self.decoder).__name__}')
        self.init_scale_branch(
            final_layer_channels(in_channels, deconv_out_channels,
                                 conv_out_channels), num_keypoints,
            self.loss_module.keypoint_loss, 'keypoint_loss', scale_kernel_size,
            scale_target, min_scale_exponent, scale_loss_weight, support_floor)

    def forward_with_scales(self, feats: Tuple[Tensor]
                            ) -> Tuple[Tensor, Tensor, Tensor]:
        """Heatmaps [B, K, H, W], tags [B, K * L or L, H, W] and scale maps
        [B, K, H, W]."""
        features = self._features(feats)
        output = self.final_layer(features)
        return (output[:, :self.num_keypoints], output[:, self.num_keypoints:],
                self.scale_layers(features))

    def _heatmap_losses(self, features: Tensor, heatmaps: Tensor,
                        gt_heatmaps: Tensor,
                        gt_masks: Tensor) -> Dict[str, Tensor]:
        """``loss_kpt`` against the scale-adapted target and
        ``loss_scale``, both on the pixels of ``gt_masks``."""
        return self.sahr_losses(
            self.loss_module.keypoint_loss,
            heatmaps,
            self.scale_layers(features),
            gt_heatmaps,
            mask=gt_masks)
