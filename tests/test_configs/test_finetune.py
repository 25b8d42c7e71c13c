"""Fine-tuning a zoo checkpoint with each method (docs/finetune.md).

- Every ``*-ft-*`` config loads the zoo weights (``Weights`` of MMPose's
  metafiles) of the stock config it inherits, builds without a download,
  and trains the method's fresh parts at 10x the fine-tune lr.
- A checkpoint of the stock model (the CPU-sized baselines, saved here; no
  download) fills every key of each method's model but the method's fresh
  parts, loaded with MMEngine's own loading as a Runner does it.
- At iteration 0 each method predicts as the stock model where its design
  says so, and its fresh parts are what the docs say.
- A real MMEngine Runner fine-tunes each method from the stock checkpoint
  with ``load_from`` and the ft configs' own optimiser and LR schedule.
"""
import functools
import math
import re
from pathlib import Path
from typing import Dict, Set, Tuple

import numpy as np
import pytest
import torch
import yaml
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.runner import Runner, load_checkpoint
from mmpose.registry import MODELS
from mmpose.utils import register_all_modules
from torch import nn

import mmpose_afl  # noqa: F401
from mmpose_afl import zoo
from mmpose_afl.models.losses import GAUSSIAN_SUPPORT_FLOOR
from tests.e2e import REPO, data_options

register_all_modules()

FT_CONFIGS = sorted(
    p.relative_to(REPO).as_posix() for p in REPO.glob('configs/*/*-ft-*.py'))
BASELINE = {
    'coco':
    'configs/baseline/td-hm_res18_1xb16-20e_synthetic-coco-128x96.py',
    'wholebody':
    'configs/baseline/'
    'td-hm_res18_1xb16-20e_synthetic-coco-wholebody-128x96.py',
}
SCALE_BRANCH = {
    f'head.scale_layers.{k}'
    for k in ('0.weight', '0.bias', '1.weight', '1.bias', '1.running_mean',
              '1.running_var', '1.num_batches_tracked', '3.weight', '3.bias')
}
KAL_STATE = {'head.loss_module.kaf_logits', 'head.loss_module.running_means'}
# method folder -> (the state-dict keys a stock checkpoint lacks, the
# parameters the ft config trains at 10x lr)
FRESH: Dict[str, Tuple[Set[str], Set[str]]] = {
    'afl': (set(), set()),  # the critic is not part of the pose model
    'fowkal': (KAL_STATE, {'head.loss_module.kaf_logits'}),
    'sahr':
    (SCALE_BRANCH,
     {k
      for k in SCALE_BRANCH if 'running' not in k and 'batches' not in k}),
    # same keys; the final conv is re-calibrated before (see below)
    'hsm': (set(), set()),
}
# method -> (synthetic method config, data kind, its ft config)
SYNTHETIC = {
    'afl':
    ('configs/afl/td-hm_res18_afl-1xb16-20e_synthetic-coco-128x96.py', 'coco',
     'configs/afl/td-hm_hrnet-w32_afl-ft-8xb64-10e_coco-256x192.py'),
    'fowkal': ('configs/fowkal/td-hm_res18_fowkal-1xb16-20e_'
               'synthetic-coco-wholebody-128x96.py', 'wholebody',
               'configs/fowkal/td-hm_hrnet-w32_dark-fowkal-ft-'
               '8xb64-10e_coco-wholebody-256x192.py'),
    'sahr': ('configs/sahr/'
             'td-hm_res18_sahr-wahr-1xb16-20e_synthetic-coco-128x96.py',
             'coco', 'configs/sahr/'
             'td-hm_hrnet-w32_sahr-wahr-ft-8xb64-10e_coco-256x192.py'),
    'hsm':
    ('configs/hsm/td-hm_res18_hsm-1xb16-20e_synthetic-coco-128x96.py', 'coco',
     'configs/hsm/td-hm_hrnet-w32_hsm-ft-8xb64-10e_coco-256x192.py'),
}


def stock_weights() -> Dict[str, str]:
    """``Weights`` of every entry of MMPose's installed metafiles, by the
    entry's config key (``configs/.../x.py``)."""
    weights = {}
    for metafile in zoo.default_metafiles():
        data = yaml.safe_load(metafile.read_text()) or {}
        for model in data.get('Models') or []:
            if model.get('Weights') and model.get('Config'):
                weights[zoo.config_key(model['Config'])] = model['Weights']
    return weights


def mmengine_load(model: torch.nn.Module, path: Path) -> Tuple[Set, Set]:
    """Load ``path`` into ``model`` with MMEngine's ``load_checkpoint`` (what
    a Runner's ``load_from`` calls) and return the (missing, unexpected) keys
    MMEngine reports. ``strict=True`` only to get the report as an error:
    MMEngine loads every matching key before it raises, as with the Runner's
    ``strict=False``."""
    try:
        load_checkpoint(model, str(path), map_location='cpu', strict=True)
    except RuntimeError as err:
        found = {}
        for what in ('missing keys', 'unexpected key'):
            hit = re.search(rf'{what} in source state_dict: (.*)', str(err))
            found[what] = set(hit.group(1).split(', ')) if hit else set()
        return found['missing keys'], found['unexpected key']
    return set(), set()


# the ft configs --------------------------------------------------------------


@functools.lru_cache
def stock_keys(stock: str) -> Set[str]:
    """The state-dict keys of the model of a stock config
    (``mmpose::...``), built without its ImageNet weights."""
    cfg = Config.fromfile(
        str(zoo.mmpose_config_root() / stock[len('mmpose::'):]))
    cfg.model.backbone.init_cfg = None
    return set(MODELS.build(cfg.model).state_dict())


@pytest.mark.parametrize('config', FT_CONFIGS)
def test_ft_config_loads_the_zoo_weights_of_its_stock_base(config):
    chain = zoo.base_chain(str(REPO / config))
    # ft config -> the method's paper config (same folder) -> stock config
    assert len(chain) == 2 and chain[1].startswith('mmpose::')
    assert Path(chain[0]).parent == (REPO / config).parent
    cfg = Config.fromfile(str(REPO / config))
    assert cfg.load_from == stock_weights()[zoo.config_key(chain[1])]
    # tools/compare_with_zoo.py compares it with the entry it starts from
    entry = zoo.find_baseline(
        str(REPO / config), zoo.load_entries(zoo.default_metafiles()))
    assert entry.config == zoo.config_key(chain[1])

    method = Config.fromfile(chain[0])
    epochs = cfg.train_cfg.max_epochs
    assert epochs <= 20 < method.train_cfg.max_epochs
    lr = cfg.optim_wrapper.optimizer.lr
    assert lr == method.optim_wrapper.optimizer.lr / 10
    warmup, step = cfg.param_scheduler
    assert warmup.type == 'LinearLR' and not warmup.by_epoch
    assert warmup.start_factor < 1 and warmup.end <= 500
    assert step.type == 'MultiStepLR' and step.by_epoch
    assert step.end == epochs and 0 < max(step.milestones) < epochs

    # builds without a download; the fresh parts are what FRESH says
    assert cfg.model.backbone.init_cfg is None
    model = MODELS.build(cfg.model)
    stock = stock_keys(chain[1])
    fresh, fast = FRESH[config.split('/')[1]]
    assert set(model.state_dict()) - stock == fresh
    assert stock <= set(model.state_dict())
    names = {id(p): n for n, p in model.named_parameters()}
    lrs = {
        names[id(p)]: group['lr']
        for group in build_optim_wrapper(
            model, cfg.optim_wrapper).optimizer.param_groups
        for p in group['params']
    }
    assert {n for n, v in lrs.items() if v == pytest.approx(10 * lr)} == fast
    assert all(v == pytest.approx(lr) for n, v in lrs.items() if n not in fast)


# a stock checkpoint in each method's model -----------------------------------


@functools.lru_cache
def stock_model(kind: str) -> torch.nn.Module:
    """The stock model of a synthetic baseline (read-only), its head's
    convs at PyTorch's default init and the final one x10, so that each
    heatmap varies over its pixels as a trained one does (the head's
    std-0.001 init gives maps flat to 1e-7, whose pixels the sigmoid
    would round to ties)."""
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(str(REPO / BASELINE[kind])).model)
    model.init_weights()
    with torch.no_grad():
        for module in model.head.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                module.reset_parameters()
        model.head.final_layer.weight.mul_(10)
    return model.eval()


@pytest.fixture(scope='module')
def stock_checkpoints(tmp_path_factory) -> Dict[str, Path]:
    """A checkpoint of each stock baseline, as the zoo ships them:
    MMPose 1.x keys for COCO, MMPose 0.x keys (``keypoint_head.*``, no
    state-dict versions) for COCO-WholeBody, like the zoo's HRNet-w32 +
    DARK WholeBody weights that the FoWKAL ft configs load."""
    root = tmp_path_factory.mktemp('stock_checkpoints')

    def rename_head(key):
        return ('keypoint_' + key) if key.startswith('head.') else key

    paths = {}
    for kind in BASELINE:
        state = stock_model(kind).state_dict()
        if kind == 'wholebody':
            state = {rename_head(k): v for k, v in state.items()}
        paths[kind] = root / f'stock_{kind}.pth'
        torch.save(dict(meta=dict(), state_dict=state), paths[kind])
    return paths


def method_model(method: str, checkpoint: Path):
    """The method's model initialised and then loaded from ``checkpoint``,
    as a Runner does (``init_weights()``, then ``load_from``), in eval
    mode, with the keys MMEngine reported missing and unexpected."""
    torch.manual_seed(1)
    cfg = Config.fromfile(str(REPO / SYNTHETIC[method][0]))
    model = MODELS.build(cfg.model)
    model.init_weights()
    missing, unexpected = mmengine_load(model, checkpoint)
    return model.eval(), missing, unexpected


@pytest.mark.parametrize('method', list(SYNTHETIC))
def test_stock_checkpoint_fills_all_but_the_fresh_parts(
        method, stock_checkpoints):
    kind = SYNTHETIC[method][1]
    model, missing, unexpected = method_model(method, stock_checkpoints[kind])
    fresh = FRESH[method][0]
    assert unexpected == set()
    # MMEngine leaves num_batches_tracked out of its report
    assert missing == {k for k in fresh if 'num_batches_tracked' not in k}
    stock = stock_model(kind).state_dict()
    loaded = model.state_dict()
    assert set(loaded) - set(stock) == fresh
    for key, value in stock.items():
        assert torch.equal(loaded[key], value), key


@functools.lru_cache
def val_batch(kind: str, data_root: Path) -> dict:
    """The first 4 persons of the synthetic val set through the baseline's
    val pipeline (what ``mim test`` feeds the model)."""
    cfg = Config.fromfile(str(REPO / BASELINE[kind]))
    cfg.merge_from_dict(
        dict(item.split('=', 1) for item in data_options(data_root, kind)))
    loader = cfg.val_dataloader
    loader.update(batch_size=4, num_workers=0, persistent_workers=False)
    return next(iter(Runner.build_dataloader(loader)))


def predict(model, batch: dict):
    model.test_cfg['output_heatmaps'] = True
    with torch.no_grad():
        data = model.data_preprocessor(batch, False)
        return model(**data, mode='predict')


@pytest.mark.parametrize('method', list(SYNTHETIC))
def test_iteration_0_predictions(method, stock_checkpoints, request):
    """SAHR, AFL, FoWKAL: exactly the stock model's keypoints, scores and
    heatmaps (flip test on). HSM: scores and heatmaps are the sigmoid of
    the stock ones, and the keypoints are the same (the sigmoid is
    monotonic, and MSRA decoding compares heatmap values only) wherever
    the stock heatmap's maximum is > 0; where it is <= 0 MMPose's decoder
    reports no location (-1, -1) from the stock heatmap, while its
    sigmoid (> 0) gives the argmax."""
    kind = SYNTHETIC[method][1]
    batch = val_batch(kind, request.getfixturevalue(f'synthetic_{kind}'))
    stock = stock_model(kind)
    model = method_model(method, stock_checkpoints[kind])[0]
    assert model.test_cfg['flip_test']
    ours, theirs = predict(model, batch), predict(stock, batch)
    assert len(ours) == len(theirs) == 4
    for a, b in zip(ours, theirs):
        a_kpt, b_kpt = a.pred_instances, b.pred_instances
        assert b_kpt.keypoint_scores.std() > 1e-3  # no flat maps
        found = b_kpt.keypoint_scores > 0
        assert found.any()
        assert np.array_equal(a_kpt.keypoints[found], b_kpt.keypoints[found])
        if method == 'hsm':
            np.testing.assert_allclose(
                a_kpt.keypoint_scores,
                1 / (1 + np.exp(-b_kpt.keypoint_scores)),
                rtol=1e-6)
            torch.testing.assert_close(a.pred_fields.heatmaps,
                                       b.pred_fields.heatmaps.sigmoid())
        else:
            assert np.array_equal(a_kpt.keypoints, b_kpt.keypoints)
            assert np.array_equal(a_kpt.keypoint_scores, b_kpt.keypoint_scores)
            assert torch.equal(a.pred_fields.heatmaps, b.pred_fields.heatmaps)


def train_batch(method: str, data_root: Path) -> dict:
    cfg = Config.fromfile(str(REPO / SYNTHETIC[method][0]))
    kind = SYNTHETIC[method][1]
    cfg.merge_from_dict(
        dict(item.split('=', 1) for item in data_options(data_root, kind)))
    loader = cfg.train_dataloader
    loader.update(batch_size=8, num_workers=0, persistent_workers=False)
    torch.manual_seed(0)
    return next(iter(Runner.build_dataloader(loader, seed=0)))


def test_sahr_starts_at_scale_0_on_the_stock_gaussian(stock_checkpoints,
                                                      synthetic_coco):
    """The scale maps are exactly 0 after loading, so the regulariser is 0
    and the heatmap loss compares the stock heatmaps with the stock target
    cut to its 3-sigma support: WAHR on (gt, gt), nothing else."""
    model = method_model('sahr', stock_checkpoints['coco'])[0].train()
    batch = train_batch('sahr', synthetic_coco)
    data = model.data_preprocessor(batch, True)
    head = model.head
    with torch.no_grad():
        feats = model.extract_feat(data['inputs'])
        heatmaps, scales = head.forward_with_scales(feats)
        losses = head.loss(feats, data['data_samples'])
    assert torch.count_nonzero(scales) == 0
    assert losses['loss_scale'] == 0
    gt = torch.stack([d.gt_fields.heatmaps for d in data['data_samples']])
    weights = torch.cat(
        [d.gt_instance_labels.keypoint_weights for d in data['data_samples']])
    target = torch.where(gt >= GAUSSIAN_SUPPORT_FLOOR, gt, 0)
    expected = head.loss_module(heatmaps, target, weights, weight_target=gt)
    torch.testing.assert_close(losses['loss_kpt'], expected)


def test_kal_factors_start_at_the_softened_heuristic(stock_checkpoints):
    model = method_model('fowkal', stock_checkpoints['wholebody'])[0]
    loss = model.head.loss_module
    factors = torch.sigmoid(loss.kaf_logits).detach()
    # COCO-WholeBody: body 0-16, feet 17-22, face 23-90, hands 91-132
    expected = torch.full((133, ), 0.2)
    expected[23:] = 0.8
    torch.testing.assert_close(factors, expected)
    assert torch.equal(loss.running_means, torch.zeros(2))  # first batch sets


def test_hsm_starts_from_the_stock_bias_not_its_prior(stock_checkpoints):
    """SigmoidHeatmapHead's background prior (bias logit(0.1)) is what a
    model trained from scratch starts with; a stock checkpoint overwrites
    it with the MSE head's bias, which the head reads as a logit."""
    model = method_model('hsm', stock_checkpoints['coco'])[0]
    stock = stock_model('coco')
    assert torch.equal(model.head.final_layer.bias,
                       stock.head.final_layer.bias)
    scratch = MODELS.build(
        Config.fromfile(str(REPO / SYNTHETIC['hsm'][0])).model)
    scratch.init_weights()
    torch.testing.assert_close(scratch.head.final_layer.bias,
                               torch.full((17, ), math.log(0.1 / 0.9)))


def test_afl_weights_at_iteration_0_have_batch_mean_1(stock_checkpoints,
                                                      synthetic_coco):
    """With a fresh critic the difficulties carry no information yet; the
    normalised weights are finite with batch mean 1, so the loss scale is
    the base loss's (docs/finetune.md reports their spread)."""
    model = method_model('afl', stock_checkpoints['coco'])[0].train()
    loss = model.head.loss_module
    data = model.data_preprocessor(train_batch('afl', synthetic_coco), True)
    with torch.no_grad():
        model(**data, mode='loss')
    weights = loss.last_samples['weight']
    assert torch.isfinite(weights).all() and len(weights) == 8
    assert weights.mean().item() == pytest.approx(1, abs=1e-6)


def test_finetune_start_stats_over_several_batches(stock_checkpoints,
                                                   synthetic_coco):
    """benchmarks/finetune_start.py's iteration-0 report runs AFL's
    training forward on 2 batches (19 persons, 16 a batch) with no
    AFLCriticHook: it drops each batch meant for the critic, so the second
    forward does not refuse to train an unlearning critic."""
    script = load_tool('finetune_start', folder='benchmarks')
    report = script.start_stats(
        stock_checkpoints['coco'],
        script.data_options(synthetic_coco),
        batches=2)
    afl, hsm = report.splitlines()
    assert afl.startswith('- AFL (fresh critic): weights ')
    assert 'over 19 persons' in afl
    assert hsm.startswith('- HSM (stock head read as logits): ')


# fine-tuning with a Runner ---------------------------------------------------

# method -> the fresh tensors that a first step must change (the critic is
# not in the model's state_dict; the SAHR branch's other layers get no
# gradient while its zero last conv is still 0)
TRAINED = {
    'afl': lambda m: m.head.loss_module.critic.state_dict(),
    'fowkal': lambda m: dict(kaf_logits=m.head.loss_module.kaf_logits),
    'sahr': lambda m: {
        k: v
        for k, v in m.head.scale_layers.state_dict().items()
        if k.startswith('3.')
    },
    'hsm': lambda m: m.head.final_layer.state_dict(),
}


@pytest.mark.parametrize('method', list(SYNTHETIC))
def test_runner_fine_tunes_from_the_stock_checkpoint(method, stock_checkpoints,
                                                     request, tmp_path,
                                                     capsys):
    """``load_from`` a stock checkpoint, with the ft config's optimiser and
    LR schedule on the synthetic method config: 2 iterations, finite
    losses, the fresh parts trained, the first lr the warm-up's."""
    config, kind, ft_config = SYNTHETIC[method]
    data_root = request.getfixturevalue(f'synthetic_{kind}')
    cfg = Config.fromfile(str(REPO / config))
    ft = Config.fromfile(str(REPO / ft_config))
    cfg.merge_from_dict(
        dict(item.split('=', 1) for item in data_options(data_root, kind)))
    cfg.optim_wrapper = ft.optim_wrapper
    cfg.param_scheduler = ft.param_scheduler
    cfg.load_from = str(stock_checkpoints[kind])
    cfg.train_cfg = dict(by_epoch=True, max_epochs=1)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.train_dataloader.update(
        batch_size=4, num_workers=0, persistent_workers=False)
    cfg.train_dataloader.dataset.indices = 8  # 2 iterations
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook', interval=-1, save_last=False)
    cfg.default_hooks.logger.interval = 1
    cfg.work_dir = str(tmp_path)
    runner = Runner.from_cfg(cfg)
    trained = TRAINED[method](runner.model)
    before = {k: v.clone() for k, v in trained.items()}
    runner.train()

    hub = runner.message_hub
    losses = hub.get_scalar('train/loss').data[0]
    assert len(losses) == 2 and np.isfinite(losses).all()
    lr = ft.optim_wrapper.optimizer.lr
    assert hub.get_scalar('train/lr').data[0][0] == pytest.approx(
        lr * ft.param_scheduler[0].start_factor)
    for key, value in TRAINED[method](runner.model).items():
        assert not torch.equal(value, before[key]), key
    # MMEngine prints (not logs) the keys the checkpoint lacks
    printed = capsys.readouterr().out
    for key in FRESH[method][0] - {'head.scale_layers.1.num_batches_tracked'}:
        assert key in printed
    assert ('do not match exactly' in printed) == bool(FRESH[method][0])
    log = next(tmp_path.glob('*/*.log')).read_text()
    if method == 'afl':
        assert 'no critic state' in log
    if method == 'sahr':
        assert np.isfinite(hub.get_scalar('train/loss_scale').data[0]).all()


def test_the_docs_configs_build(tmp_path):
    """The config blocks of docs/finetune.md (a user's own data, the MSE
    control) build, inherit the fine-tune recipe and keep its load_from;
    the ``mmpose_afl::`` bases are read from this checkout's configs."""
    text = (REPO / 'docs' / 'finetune.md').read_text()
    blocks = re.findall(r'```python\n(.*?)```', text, re.S)
    assert len(blocks) == 2
    heads = []
    for i, block in enumerate(blocks):
        path = tmp_path / f'block{i}.py'
        path.write_text(block.replace('mmpose_afl::', f'{REPO}/configs/'))
        cfg = Config.fromfile(str(path))
        base = Config.fromfile(str(REPO / SYNTHETIC['sahr'][2]))
        assert cfg.load_from == base.load_from
        assert cfg.param_scheduler == base.param_scheduler
        heads.append(type(MODELS.build(cfg.model).head).__name__)
    assert heads == ['SAHRHead', 'HeatmapHead']
    assert Config.fromfile(str(tmp_path / 'block1.py')).optim_wrapper \
        .paramwise_cfg == {}


def load_tool(name: str, folder: str = 'tools'):
    import importlib.util
    spec = importlib.util.spec_from_file_location(name,
                                                  REPO / folder / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('kind', ['coco', 'wholebody'])
def test_recalibrated_stock_checkpoint_for_hsm(kind, stock_checkpoints,
                                               tmp_path, request):
    """tools/recalibrate_sigmoid_head.py: logit = a y + b with
    b = -ln 9, a = 2 ln 9 (by hand: sigmoid(b) = 0.1, sigmoid(a + b) =
    0.9), on 1.x and 0.x keys; the HSM model loaded from it finds the
    stock model's keypoints wherever the stock maximum is > 0."""
    out = tmp_path / 'recalibrated.pth'
    assert load_tool('recalibrate_sigmoid_head').main(
        [str(stock_checkpoints[kind]), str(out)]) == 0
    before = torch.load(stock_checkpoints[kind], weights_only=False)
    after = torch.load(out, weights_only=False)
    prefix = 'head' if kind == 'coco' else 'keypoint_head'
    a, b = 2 * math.log(9), -math.log(9)
    for key, value in before['state_dict'].items():
        if key == f'{prefix}.final_layer.weight':
            expected = a * value
        elif key == f'{prefix}.final_layer.bias':
            expected = a * value + b
        else:
            expected = value
        torch.testing.assert_close(after['state_dict'][key], expected)
    assert 1 / (1 + math.exp(-b)) == pytest.approx(0.1)
    assert 1 / (1 + math.exp(-(a + b))) == pytest.approx(0.9)
    if kind == 'wholebody':
        return
    model, missing, unexpected = method_model('hsm', out)
    assert missing == unexpected == set()
    batch = val_batch('coco', request.getfixturevalue('synthetic_coco'))
    ours, theirs = predict(model, batch), predict(stock_model('coco'), batch)
    for x, y in zip(ours, theirs):
        found = y.pred_instances.keypoint_scores > 0
        assert found.any()
        assert np.array_equal(x.pred_instances.keypoints[found],
                              y.pred_instances.keypoints[found])
        torch.testing.assert_close(
            x.pred_fields.heatmaps, (a * y.pred_fields.heatmaps + b).sigmoid(),
            rtol=1e-4,
            atol=1e-5)


def test_recalibrate_refuses_a_checkpoint_without_a_heatmap_head():
    tool = load_tool('recalibrate_sigmoid_head')
    with pytest.raises(ValueError, match='final conv'):
        tool.recalibrate(dict(state_dict={'backbone.x': torch.zeros(1)}))
    with pytest.raises(ValueError, match='prior'):
        tool.recalibrate(dict(state_dict={}), prior=0.5)
