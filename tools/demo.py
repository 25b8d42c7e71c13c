"""The project's demo: generate the synthetic data, train each method's demo
config with ``mim train``, evaluate it with ``mim test`` and print one table.

Run through ``make demo`` (which installs the stack first), or directly::

    python tools/demo.py [--methods baseline,afl] [--epochs N]

Each run writes to ``work_dirs/demo/<method>``; the tables (one per dataset,
with the columns of MMPose's zoo tables: AP, AP .5, AP .75 and AR for COCO;
whole-body, body, foot, face and hand AP and whole-body AR for WholeBody) are
also written to ``work_dirs/demo/results.md``.
"""
import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

# method name -> (demo config, dataset kind)
DEMOS = {
    'baseline': ('configs/baseline/td-hm_res18_1xb16-20e_synthetic-coco-128x96.py',
                 'coco'),
    'afl': ('configs/afl/td-hm_res18_afl-1xb16-20e_synthetic-coco-128x96.py',
            'coco'),
    'sahr-wahr': ('configs/sahr/td-hm_res18_sahr-wahr-1xb16-20e_synthetic-coco-128x96.py',
                  'coco'),
    'hsm': ('configs/hsm/td-hm_res18_hsm-1xb16-20e_synthetic-coco-128x96.py',
            'coco'),
    'baseline-wholebody': (
        'configs/baseline/td-hm_res18_1xb16-20e_synthetic-coco-wholebody-128x96.py',
        'wholebody'),
    'fowkal': (
        'configs/fowkal/td-hm_res18_fowkal-1xb16-20e_synthetic-coco-wholebody-128x96.py',
        'wholebody'),
}
DATA = {
    'coco': ('data/synthetic_coco', 200, 50),
    'wholebody': ('data/synthetic_coco_wholebody', 200, 50),
}
METRIC = re.compile(r'([\w-]+/[\w.() -]+?): (-?\d+\.\d+)')
# the columns of the zoo tables: dataset kind -> [(metric key, header)]
COLUMNS = {
    'coco': [('coco/AP', 'AP'), ('coco/AP .5', 'AP .5'),
             ('coco/AP .75', 'AP .75'), ('coco/AR', 'AR')],
    'wholebody': [('coco-wholebody/AP', 'whole AP'),
                  ('coco-wholebody/body_AP', 'body AP'),
                  ('coco-wholebody/foot_AP', 'foot AP'),
                  ('coco-wholebody/face_AP', 'face AP'),
                  ('coco-wholebody/hand_AP', 'hand AP'),
                  ('coco-wholebody/AR', 'whole AR')],
}


def run(cmd, log: Path) -> str:
    print('$', ' '.join(map(str, cmd)), flush=True)
    with open(log, 'w') as f:
        proc = subprocess.run(list(map(str, cmd)), cwd=REPO, stdout=f,
                              stderr=subprocess.STDOUT)
    text = log.read_text()
    if proc.returncode != 0:
        sys.exit(f'failed ({proc.returncode}); see {log}:\n{text[-3000:]}')
    return text


def ensure_data(kind: str) -> None:
    out, num_train, num_val = DATA[kind]
    if (REPO / out / 'annotations').is_dir():
        return
    run([sys.executable, 'tools/make_synthetic_data.py', '--kind', kind,
         '--out', out, '--num-train', num_train, '--num-val', num_val,
         '--seed', 0], REPO / 'work_dirs' / f'make_data_{kind}.log')


def test_metrics(text: str) -> dict:
    """Metrics from the ``Epoch(test)`` line that ``mim test`` prints."""
    lines = [ln for ln in text.splitlines() if 'Epoch(test)' in ln]
    if not lines:
        sys.exit('mim test printed no Epoch(test) line:\n' + text[-3000:])
    return {k.strip(): float(v) for k, v in METRIC.findall(lines[-1])}


def results_table(rows) -> str:
    """Markdown tables, one per dataset kind, of ``rows`` =
    ``[(method, kind, train minutes, metrics), ...]``."""
    tables = []
    for kind, columns in COLUMNS.items():
        kind_rows = [row for row in rows if row[1] == kind]
        if not kind_rows:
            continue
        header = ['method', 'data', 'train min'] + [h for _, h in columns]
        lines = ['| ' + ' | '.join(header) + ' |',
                 '|---|---|' + '---:|' * (len(header) - 2)]
        for method, _, minutes, metrics in kind_rows:
            cells = [method, f'synthetic {kind}', f'{minutes:.1f}'] + [
                f'{metrics[k]:.3f}' if k in metrics else '-'
                for k, _ in columns]
            lines.append('| ' + ' | '.join(cells) + ' |')
        tables.append('\n'.join(lines))
    return '\n\n'.join(tables)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--methods', default=','.join(DEMOS),
                        help=f'comma-separated subset of {list(DEMOS)}')
    parser.add_argument('--epochs', type=int, default=None,
                        help='override the configs\' max_epochs')
    args = parser.parse_args()
    methods = args.methods.split(',')
    unknown = sorted(set(methods) - set(DEMOS))
    if unknown:
        sys.exit(f'unknown --methods {unknown}; choose from {list(DEMOS)}')

    rows = []
    for method in methods:
        config, kind = DEMOS[method]
        ensure_data(kind)
        work_dir = REPO / 'work_dirs' / 'demo' / method
        work_dir.mkdir(parents=True, exist_ok=True)
        options = []
        if args.epochs:
            options = ['--cfg-options', f'train_cfg.max_epochs={args.epochs}']
        start = time.time()
        run([BIN / 'mim', 'train', 'mmpose', config, '--work-dir', work_dir,
             *options], work_dir / 'console_train.log')
        minutes = (time.time() - start) / 60
        checkpoint = (work_dir / 'last_checkpoint').read_text().strip()
        text = run([BIN / 'mim', 'test', 'mmpose', config, '--checkpoint',
                    checkpoint, '--work-dir', work_dir],
                   work_dir / 'console_test.log')
        rows.append((method, kind, minutes, test_metrics(text)))

    table = results_table(rows)
    (REPO / 'work_dirs' / 'demo' / 'results.md').write_text(table + '\n')
    print('\n' + table)


if __name__ == '__main__':
    main()
