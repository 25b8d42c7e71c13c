"""The model index: one entry per method config in MMPose's metafile format,
and the configs table of docs/configs.md generated from it."""
import importlib.util
from pathlib import Path

import pytest
import yaml
from mmengine.config import Config

from mmpose_afl import zoo
from tests.e2e import REPO

METHOD_FOLDERS = ('afl', 'fowkal', 'hsm', 'sahr')
DATASETS = {
    'CocoDataset': 'COCO',
    'CocoWholeBodyDataset': 'COCO-WholeBody',
    'MpiiDataset': 'MPII'
}


def _tool():
    spec = importlib.util.spec_from_file_location(
        'configs_table', REPO / 'tools' / 'dev' / 'configs_table.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _stock_entry_keys():
    keys = set()
    for metafile in zoo.default_metafiles():
        data = yaml.safe_load(metafile.read_text()) or {}
        for model in data.get('Models') or []:
            keys |= set(model)
    return keys


@pytest.mark.parametrize('folder', METHOD_FOLDERS)
def test_every_method_config_has_one_entry(folder):
    data = yaml.safe_load(
        (REPO / 'configs' / folder / 'metafile.yml').read_text())
    collections = {c['Name'] for c in data['Collections']}
    configs = sorted(
        p.relative_to(REPO).as_posix()
        for p in (REPO / 'configs' / folder).glob('*.py'))
    assert sorted(m['Config'] for m in data['Models']) == configs
    stock_keys = _stock_entry_keys()
    for model in data['Models']:
        assert set(model) <= stock_keys, model['Name']
        assert model['Name'] == Path(model['Config']).stem
        assert model['In Collection'] in collections
        cfg = Config.fromfile(str(REPO / model['Config']))
        dataset = DATASETS[cfg.train_dataloader.dataset.type]
        if 'synthetic' in cfg.train_dataloader.dataset.data_root:
            dataset = f'synthetic {dataset} (tools/make_synthetic_data.py)'
        assert model['Metadata']['Training Data'] == dataset, model['Name']


def test_table_rows_come_from_the_metafiles():
    rows = _tool().method_rows()
    row = next(r for r in rows if 'td-hm_hrnet-w32_afl-8xb64' in r)
    assert row == (
        '| `configs/afl/td-hm_hrnet-w32_afl-8xb64-210e_coco-256x192.py` | '
        'HRNet + AFL | COCO | `body_2d_keypoint/topdown_heatmap/coco/'
        'td-hm_hrnet-w32_8xb64-210e_coco-256x192.py` |')
    assert len(rows) == sum(
        len(yaml.safe_load(p.read_text())['Models'])
        for p in REPO.glob('configs/*/metafile.yml'))


def test_configs_outside_the_index_are_read_from_the_config():
    rows = _tool().other_rows([])
    row = next(r for r in rows if 'configs/ohkm/' in r and 'wholebody' in r)
    assert row == (
        '| `configs/ohkm/td-hm_res18_ohkm-1xb16-20e_synthetic-coco-wholebody'
        '-128x96.py` | HeatmapHead + KeypointOHKMMSELoss | synthetic '
        'COCO-WholeBody (tools/make_synthetic_data.py) | '
        '`wholebody_2d_keypoint/topdown_heatmap/coco-wholebody/'
        'td-hm_hrnet-w32_dark-8xb64-210e_coco-wholebody-256x192.py` |')
    row = next(r for r in rows if 'afl-cond-1xb16-20e_synthetic-coco-128' in r)
    assert '| HeatmapHead + AFLHeatmapLoss + AFLConditionalCritic |' in row


def test_docs_configs_lists_every_config_file():
    # every config file, found here independently of the tool, is named in
    # one table row of the page, and no row names a file that is gone
    files = sorted(
        p.relative_to(REPO).as_posix()
        for p in (REPO / 'configs').rglob('*.py') if '_base_' not in p.parts)
    text = (REPO / 'docs' / 'configs.md').read_text()
    rows = [
        line.split('`')[1] for line in text.splitlines()
        if line.startswith('| `configs/')
    ]
    assert sorted(rows) == files


def test_write_then_check(tmp_path, capsys):
    tool = _tool()
    readme = tmp_path / 'README.md'
    readme.write_text(f'# x\n\n{tool.BEGIN}\nold table\n{tool.END}\n\nend\n')
    assert tool.main(['--check', str(readme)]) == 1
    assert '--write' in capsys.readouterr().err
    assert tool.main(['--write', str(readme)]) == 0
    assert readme.read_text() == (
        f'# x\n\n{tool.BEGIN}\n{tool.table()}\n{tool.END}\n\nend\n')
    assert tool.main(['--check', str(readme)]) == 0

    readme.write_text('no markers\n')
    assert tool.main(['--check', str(readme)]) == 1
    assert tool.BEGIN in capsys.readouterr().err


def test_docs_configs_table_is_the_generated_one(capsys):
    assert _tool().main(['--check', str(REPO / 'docs' / 'configs.md')]) == 0, \
        capsys.readouterr().err
