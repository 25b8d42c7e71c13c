"""Helpers of the project's scripts and tests: running ``mim`` in a
subprocess (:mod:`.mim_run`), AMP without a GPU (:mod:`.cpu_amp`) and
checks of a finished run (:mod:`.run_checks`). Imported by module, not by
``import mmpose_afl``."""
