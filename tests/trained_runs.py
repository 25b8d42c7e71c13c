"""One short real ``mim train`` per config and test session, shared by the
test files that need a trained work dir (a checkpoint and a validation)."""
from pathlib import Path

from tests.e2e import run_train, short_schedule


def trained(config: str,
            tmp_path_factory,
            data_root: Path,
            kind: str = 'coco') -> Path:
    """Work dir of a 1-epoch ``mim train`` of ``config`` on ``data_root``
    (2 iterations of batch 4, one validation, ``epoch_1.pth``), run the
    first time a test of the session asks for it. Treat it as read-only:
    copy it before writing into it."""
    work_dir = tmp_path_factory.getbasetemp() / 'trained_runs' / Path(
        config).stem
    if not (work_dir / 'last_checkpoint').is_file():
        run_train(
            config, work_dir, data_root, kind, cfg_options=short_schedule())
    return work_dir
