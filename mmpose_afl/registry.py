"""The registries of the scope ``mmpose_afl``: one empty child of each of
MMPose's registries.

Why: MMEngine marks every object of a base taken from a package
(``_base_ = ['mmpose_afl::afl/...py']``) with that package's scope,
``_scope_='mmpose_afl'``, and builds it with the registry of that scope,
which it looks up by importing ``mmpose_afl.registry``. Without these
children it warns at each build and falls back to the registry it was
called on, which for the Runner's own builds (visualizer, hooks) is
MMEngine's root, which knows no MMPose types. A child finds every MMPose
and MMEngine type through its parents, and imports its parent's modules
and this package (which registers into MMPose's registries) before its
first look-up. See docs/packaging.md.
"""
from typing import Dict

import mmpose.registry as mmpose_registry
from mmengine.registry import Registry

SCOPE = 'mmpose_afl'


class ChildRegistry(Registry):
    """A registry whose look-ups fall through to ``parent``, which imports
    the parent's modules first: MMEngine's ``Registry.get`` searches the
    parents' records without importing their locations, so a child of
    MMPose's ``HOOKS`` would otherwise miss the hooks of a module that
    nothing imported yet.

    Args:
        parent (Registry): the MMPose registry.
    """

    def __init__(self, parent: Registry):
        super().__init__(
            parent.name, parent=parent, scope=SCOPE, locations=[SCOPE])

    def import_from_location(self) -> None:
        self.parent.import_from_location()
        super().import_from_location()


#: MMPose's registry name (``MODELS``, ``HOOKS``, ...) -> its child
REGISTRIES: Dict[str, ChildRegistry] = {
    name: ChildRegistry(parent)
    for name, parent in vars(mmpose_registry).items()
    if isinstance(parent, Registry) and parent.scope == 'mmpose'
}
globals().update(REGISTRIES)
