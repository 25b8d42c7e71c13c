"""MMPose's associative-embedding codec with the labels that bottom-up
training needs packed into the data samples."""
from mmpose.codecs import AssociativeEmbedding
from mmpose.registry import KEYPOINT_CODECS


@KEYPOINT_CODECS.register_module()
class AssociativeEmbeddingLabels(AssociativeEmbedding):
    """:class:`AssociativeEmbedding` whose ``keypoint_indices`` reach the
    head.

    In MMPose 1.3.2 the stock codec encodes ``keypoint_indices`` (the
    heatmap position and visibility of every keypoint of every person,
    [N, K, 2]) but ``PackPoseInputs`` packs only the labels named in its
    ``label_mapping_table``, which lacks them, so
    ``AssociativeEmbeddingHead.loss`` fails on every training batch (and
    the stock config ships an empty ``train_pipeline``). This codec names
    them in its own ``label_mapping_table``, which ``GenerateTarget`` hands
    to ``PackPoseInputs`` (the mechanism MMPose's codecs use for their own
    labels); encoding and decoding are the stock codec's, unchanged.

    Args: as :class:`AssociativeEmbedding`.
    """

    label_mapping_table = dict(
        keypoint_indices='keypoint_indices',
        keypoint_weights='keypoint_weights')
