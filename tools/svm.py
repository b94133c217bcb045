"""Linear-SVM probe of a frozen encoder (ConClu / CluRender protocol): the one routine behind the
periodic probe of pre-training (``svm_probe.freq``) and ``main.py --svm``.

Global features of whole clouds (no masking, eval mode) are extracted for a labelled train and
test split and a scikit-learn ``LinearSVC`` is fit on the train features and scored on the test
features. Two protocols:

* fixed C (``linear_svm_accuracy``): the raw features and ``svm_probe.C``; what pre-training logs
  as ``svm_acc`` every ``svm_probe.freq`` epochs;
* tuned (``tuned_svm_accuracy``): standardised features and C chosen from a grid by stratified
  k-fold cross-validation on the **train** features only (``choose_C``); the test features are
  used once, to score the chosen model. ``main.py --svm`` reports it.

``SvmProbe`` builds the two evaluation loaders once (on first use) and keeps them for the run;
evaluation loaders keep each cloud's stored point order, so the features are deterministic.
"""
import numpy as np
import torch
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from datasets import build_dataloader, unpack_batch
from utils import dist
from utils.transforms import fps_downsample

C_GRID = (0.01, 0.1, 1.0, 10.0)
CV_FOLDS = 5


@torch.no_grad()
def extract_features(feature_fn, loader, device, npoints):
    """Run ``feature_fn(points (B,npoints,3)) -> (B,D)`` over ``loader``; returns numpy (n,D), (n,).

    Clouds with more than ``npoints`` points are brought to ``npoints`` by farthest point
    sampling from point 0 (ModelNet's cache stores 8192 FPS-ordered points per shape).
    Under DDP each rank extracts its shard and the shards are gathered by dataset index
    (``utils.dist.gather_by_index``), so every rank returns each item once, in dataset order.
    """
    feats, labels = [], []
    kind = getattr(loader, 'kind', None)
    for batch in loader:
        batch = unpack_batch(batch, kind)
        points = fps_downsample(batch.points.to(device, non_blocking=True), npoints)
        feats.append(feature_fn(points).float())
        labels.append(batch.label.to(device))
    feats, labels = torch.cat(feats), torch.cat(labels)
    if dist.is_dist():
        _, out = dist.gather_by_index(loader.sample_indices(), {'feats': feats, 'labels': labels})
        feats, labels = out['feats'], out['labels']
    return feats.cpu().numpy(), labels.cpu().numpy()


def linear_svm_accuracy(train_x, train_y, test_x, test_y, C=0.01, seed=0):
    """Fit ``LinearSVC(C)`` on the raw train features, return the test accuracy in percent."""
    svm = LinearSVC(C=C, dual=True, random_state=seed, max_iter=10000)
    svm.fit(train_x, train_y)
    return float(100.0 * np.mean(svm.predict(test_x) == test_y))


def tuned_svm(seed=0, C=1.0):
    """Standardisation + ``LinearSVC(C)``, the model of the tuned protocol. Both protocols use
    liblinear's dual solver (``dual=True``, LinearSVC's classic default, as Point-BERT's probe): on
    the standardised features of a few hundred clouds, often linearly separable, the primal solver
    needs thousands of Newton iterations at C = 10 (60 s for one fit of 400 x 384 features, 25
    classes, where the dual one converges in 1 s)."""
    return make_pipeline(StandardScaler(), LinearSVC(C=C, dual=True, random_state=seed, max_iter=5000))


def choose_C(train_x, train_y, grid=C_GRID, folds=CV_FOLDS, seed=0):
    """C of the tuned protocol by stratified ``folds``-fold cross-validation on the train features
    (n, D) and labels (n,) alone. Fewer folds when a class has fewer than ``folds`` items; with
    under 2 per class no cross-validation is possible and C is 1. Returns ``(C, {C: mean
    cross-validation accuracy %})`` (empty without cross-validation)."""
    folds = min(folds, int(np.unique(train_y, return_counts=True)[1].min()))
    if folds < 2:
        return 1.0, {}
    search = GridSearchCV(tuned_svm(seed), {'linearsvc__C': list(grid)},
                          cv=StratifiedKFold(folds, shuffle=True, random_state=seed))
    search.fit(train_x, train_y)
    scores = {float(c): 100.0 * float(s) for c, s in zip(grid, search.cv_results_['mean_test_score'])}
    return float(search.best_params_['linearsvc__C']), scores


def tuned_svm_accuracy(train, test, grid=C_GRID, folds=CV_FOLDS, seed=0):
    """``train`` and ``test`` are (features (n, D), labels (n,)). C from ``choose_C`` on ``train``,
    then the standardised SVM refit on all of ``train`` and scored on ``test``. Returns
    ``{'acc': test accuracy %, 'C': C, 'cv': {C: cross-validation accuracy %}}``."""
    C, scores = choose_C(*train, grid=grid, folds=folds, seed=seed)
    svm = tuned_svm(seed, C).fit(*train)
    return {'acc': float(100.0 * np.mean(svm.predict(test[0]) == test[1])), 'C': C, 'cv': scores}


class SvmProbe:
    """A linear-SVM probe on two dataset entries (train, test), with their loaders cached.

    ``features(feature_fn)`` -> ((train_x, train_y), (test_x, test_y)) numpy arrays of
    ``feature_fn(points (B, npoints, 3)) -> (B, D)``; ``npoints`` per split is the entry's
    ``npoints``, else ``npoints`` given here. The loaders are built on the first call and kept.
    """

    def __init__(self, train_entry, test_entry, *, npoints, batch_size, device, seed=0, num_workers=0,
                 pin_memory=False):
        self.entries = {'train': train_entry, 'test': test_entry}
        self.npoints, self.batch_size, self.device = npoints, batch_size, device
        self.seed, self.num_workers, self.pin_memory = seed, num_workers, pin_memory
        self.loaders = {}

    def loader(self, split):
        if split not in self.loaders:
            self.loaders[split] = build_dataloader(self.entries[split], train=False, total_bs=self.batch_size,
                                                   seed=self.seed, num_workers=self.num_workers,
                                                   pin_memory=self.pin_memory, where=f'svm {split} split')
        return self.loaders[split]

    def open(self):
        """Build both loaders now (a bad file stops the run before any training)."""
        for split in self.entries:
            self.loader(split)

    def features(self, feature_fn):
        return tuple(extract_features(feature_fn, self.loader(split), self.device,
                                      self.entries[split].get('npoints') or self.npoints)
                     for split in ('train', 'test'))

    def accuracy(self, feature_fn, C):
        """Fixed-C probe on the raw features -> test accuracy %."""
        train, test = self.features(feature_fn)
        return linear_svm_accuracy(*train, *test, C=C, seed=self.seed)
