"""Datasets of mmpose-afl: the synthetic COCO / COCO-WholeBody generator."""
