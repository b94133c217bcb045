"""Linear-SVM probe of a frozen encoder (ConClu / CluRender protocol).

Global features of whole clouds (no masking) are extracted for a labelled train and
test set; a linear SVM (scikit-learn ``LinearSVC``) is fit on the train features and
scored on the test features.
"""
import numpy as np
import torch
from sklearn.svm import LinearSVC

from datasets import unpack_batch
from utils.transforms import fps_downsample
from utils import dist


@torch.no_grad()
def extract_features(feature_fn, loader, device, npoints):
    """Run ``feature_fn(points (B,npoints,3)) -> (B,D)`` over ``loader``; returns numpy (n,D), (n,).

    Clouds with more than ``npoints`` points are brought to ``npoints`` by farthest point
    sampling from point 0 (ModelNet's cache stores 8192 FPS-ordered points per shape).

    Under DDP each rank extracts its shard and the shards are gathered, so every rank
    returns the whole set (a DistributedSampler may pad a few duplicates: harmless for a probe).
    """
    feats, labels = [], []
    for batch in loader:
        points, label = unpack_batch(batch)
        points = fps_downsample(points.to(device, non_blocking=True), npoints)
        feats.append(feature_fn(points).float())
        labels.append(label.to(device))
    feats, labels = torch.cat(feats), torch.cat(labels)
    if dist.is_dist():
        feats, labels = dist.all_gather_cat(feats), dist.all_gather_cat(labels)
    return feats.cpu().numpy(), labels.cpu().numpy()


def linear_svm_accuracy(train_x, train_y, test_x, test_y, C=0.01, seed=0):
    """Fit ``LinearSVC(C)`` on train features, return test accuracy in percent."""
    svm = LinearSVC(C=C, random_state=seed, max_iter=10000)
    svm.fit(train_x, train_y)
    return float(100.0 * np.mean(svm.predict(test_x) == test_y))
