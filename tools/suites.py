"""The evaluation suites as data: which runs each protocol makes (``Run``: config, flags, the
table columns it feeds) and which ``results.json`` keys each kind of value is read from
(``RESULT_KEYS``). ``tools/evaluate.py`` runs them; a new protocol is a ``Run`` row here.
"""
from typing import NamedTuple

# results.json key paths read for each kind of value, first found wins (dotted = nested; 'rows[].key'
# = that key of every row of a list). Training runs write tools/trainer.py's {best_epoch: {epoch,
# metrics}, last_epoch: {...}}; evaluations (--test, --svm) {mode, checkpoint, metrics}; few-shot
# --fold -1 {folds: [{fold, acc, last_acc} or {fold, error}], acc_mean, acc_std, ...}.
RESULT_KEYS = {
    'acc_best': ('best_epoch.metrics.acc', 'best_epoch.metrics.val_acc'),   # fine-tune / few-shot fold
    'acc_last': ('last_epoch.metrics.acc', 'last_epoch.metrics.val_acc'),
    'folds': ('folds[].acc',),                      # --fold -1: the fold rows' best accuracy (None: failed)
    'folds_last': ('folds[].last_acc',),
    'vote_mean': ('metrics.vote_acc_mean',),                                 # --test: mean of R repeats
    'vote_max': ('metrics.vote_acc_max',),                                   # ... the best repeat (max)
    'svm_acc': ('metrics.svm_acc', 'svm_acc'),                               # --svm (C tuned on train)
    'inst_miou': ('best_epoch.metrics.instance_miou', 'best_epoch.metrics.inst_miou'),  # trainpartseg.py
    'cls_miou': ('best_epoch.metrics.class_miou', 'best_epoch.metrics.cls_miou'),
    'inst_miou_last': ('last_epoch.metrics.instance_miou', 'last_epoch.metrics.inst_miou'),
}


class Run(NamedTuple):
    """One command of a protocol. ``args`` may hold ``{ckpt}`` (the encoder's checkpoint) and
    ``{needs}`` (the experiment folder of the run named by ``needs``, same encoder and seed).
    ``columns``: table column -> RESULT_KEYS kind; ``max_columns`` / ``last_columns`` likewise for
    the labelled max and the last-epoch value. ``tool``: 'main' (main.py) or 'partseg'."""
    name: str
    config: str
    args: tuple
    columns: dict
    max_columns: dict = {}
    last_columns: dict = {}
    needs: str = None
    tool: str = 'main'
    votes: str = '—'
    selection: str = '—'
    statistic: str = 'seeds'


FINETUNE = ('--finetune_model', '--ckpts', '{ckpt}')
BEST = 'best epoch (test split, as the papers; last epoch also recorded)'
SCAN = (('objbg', 'OBJ_BG'), ('objonly', 'OBJ_ONLY'), ('hardest', 'PB_T50_RS'))
PROTOCOLS = (('full', ''), ('linear', ' MLP-Linear'), ('mlp3', ' MLP-3'))


def modelnet_runs(cfgs):
    return [
        Run('modelnet_full', f'{cfgs}/finetune_modelnet.yaml', FINETUNE, {'ModelNet40': 'acc_best'},
            last_columns={'ModelNet40': 'acc_last'}, votes='none (single pass)', selection=BEST),
        Run('modelnet_vote', f'{cfgs}/finetune_modelnet.yaml', ('--test', '--ckpts', '{needs}/ckpt-best.pth'),
            {'ModelNet40 +vote': 'vote_mean'}, max_columns={'ModelNet40 +vote': 'vote_max'},
            needs='modelnet_full', votes='{config}: mean of the repeats (max labelled)',
            selection='ckpt-best.pth of modelnet_full'),
    ]


def scan_runs(cfgs, variants=SCAN, protocols=PROTOCOLS):
    return [Run(f'scan_{v}_{p}', f'{cfgs}/finetune_scan_{v}.yaml', FINETUNE + ('--opts', f'model.type={p}'),
                {col + suffix: 'acc_best'}, last_columns={col + suffix: 'acc_last'}, votes='none', selection=BEST)
            for v, col in variants for p, suffix in protocols]


def fewshot_runs(config, settings=((5, 10), (5, 20), (10, 10), (10, 20)), folds=(-1,)):
    """``--fold -1`` runs the ten folds in one process (results.json ``folds``); other fold
    numbers are one run each, pooled into the setting's column."""
    runs = []
    for way, shot in settings:
        for fold in folds:
            best, last = ('folds', 'folds_last') if fold == -1 else ('acc_best', 'acc_last')
            suffix = '' if fold == -1 else f'_f{fold}'
            runs.append(Run(f'fewshot_{way}w{shot}s{suffix}', config,
                            FINETUNE + ('--way', str(way), '--shot', str(shot), '--fold', str(fold)),
                            {f'{way}w{shot}s': best}, last_columns={f'{way}w{shot}s': last}, votes='none',
                            selection='best epoch of each fold (its test split)', statistic='folds × seeds'))
    return runs


def svm_run(config):
    return Run('svm', config, ('--svm', '--ckpts', '{ckpt}'), {'SVM ModelNet40': 'svm_acc'},
               votes='none', selection='no training (frozen encoder)')


def partseg_run(config):
    return Run('partseg', config, ('--ckpts', '{ckpt}'),
               {'ShapeNetPart inst. mIoU': 'inst_miou', 'ShapeNetPart cls. mIoU': 'cls_miou'},
               last_columns={'ShapeNetPart inst. mIoU': 'inst_miou_last'}, tool='partseg', votes='none',
               selection='best epoch by instance mIoU (test split)')


# The suites. ``random_config``: the pre-training config whose model ``--ckpts random`` initialises.
SUITES = {
    'full': {
        'about': 'real-data protocol of the papers (GPU scale)',
        'random_config': 'cfgs/pretrain.yaml',
        'runs': modelnet_runs('cfgs') + scan_runs('cfgs') + fewshot_runs('cfgs/fewshot.yaml')
        + [svm_run('cfgs/finetune_modelnet.yaml'), partseg_run('cfgs/partseg.yaml')],
    },
    'demo': {
        'about': 'every protocol on the synthetic demo data (cfgs/demo/)',
        'random_config': 'cfgs/demo/pretrain.yaml',
        'runs': modelnet_runs('cfgs/demo') + scan_runs('cfgs/demo') + fewshot_runs('cfgs/demo/fewshot.yaml')
        + [svm_run('cfgs/demo/finetune_modelnet.yaml'), partseg_run('cfgs/demo/partseg.yaml')],
    },
    'quick': {
        'about': 'one seed, every protocol once, few epochs (cfgs/demo/quick/): the make demo suite',
        'random_config': 'cfgs/demo/pretrain.yaml',
        'runs': modelnet_runs('cfgs/demo/quick') + scan_runs('cfgs/demo/quick', SCAN[:1], PROTOCOLS[:2])
        + fewshot_runs('cfgs/demo/quick/fewshot.yaml', ((5, 10),), folds=(0, 1))
        + [svm_run('cfgs/demo/finetune_modelnet.yaml'), partseg_run('cfgs/demo/quick/partseg.yaml')],
    },
}
