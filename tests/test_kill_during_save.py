"""A run killed (SIGKILL) at any point of ``save_checkpoint`` leaves a checkpoint that loads and
resumes: the previous one before the rename, the new one after it; the temporary file it may leave
is removed by the next run's start-up clean-up. The saving process is a fork of the test process
(no second torch import), which kills itself at the point under test."""
import multiprocessing
import os
import signal
import time

import pytest
import torch

import utils.checkpoint as ckpt
import utils.io as io
from utils.checkpoint import load_checkpoint, resume_state
from utils.io import TEMP_FILE, remove_stale_temp_files

pytestmark = pytest.mark.skipif('fork' not in multiprocessing.get_all_start_methods(), reason='needs fork')


def model_and_optimizer():
    torch.manual_seed(0)
    model = torch.nn.Linear(64, 64)
    return model, torch.optim.AdamW(model.parameters(), lr=1e-3)


def step(model, opt):
    opt.zero_grad()
    model(torch.randn(8, 64)).square().mean().backward()
    opt.step()


def die(*_, **__):
    os.kill(os.getpid(), signal.SIGKILL)


class DyingFile:
    """A file that writes 100 more bytes after the first 20 kB, then kills the process."""

    def __init__(self, f):
        self.f, self.n = f, 0

    def write(self, data):
        self.n += len(data)
        if self.n > 20000:
            self.f.write(bytes(data)[:100])
            self.f.flush()
            die()
        return self.f.write(data)

    def __getattr__(self, name):
        return getattr(self.f, name)


def child(path, point):
    """Save epoch 1, train a step, start saving epoch 2 and die at ``point``."""
    torch.set_num_threads(1)
    model, opt = model_and_optimizer()
    step(model, opt)
    ckpt.save_checkpoint(ckpt.make_checkpoint(model, opt, epoch=1), path)
    step(model, opt)
    if point == 'mid_write':
        save = torch.save
        ckpt.torch.save = lambda obj, f: save(obj, DyingFile(f))
    elif point == 'before_fsync':
        io.os.fsync = die
    elif point == 'before_replace':
        io.os.replace = die
    elif point == 'after_replace':
        replace = os.replace
        io.os.replace = lambda a, b: (replace(a, b), die())
    ckpt.save_checkpoint(ckpt.make_checkpoint(model, opt, epoch=2), path)
    os._exit(0)  # not reached


@pytest.fixture(scope='module', autouse=True)
def warm_parent():
    """Import what a first optimizer step and a save import, once, before forking."""
    step(*model_and_optimizer())


@pytest.mark.parametrize('point, epoch', [('mid_write', 1), ('before_fsync', 1), ('before_replace', 1),
                                          ('after_replace', 2)])
def test_killed_save_leaves_a_loadable_resumable_checkpoint(tmp_path, point, epoch):
    path = str(tmp_path / 'ckpt-last.pth')
    proc = multiprocessing.get_context('fork').Process(target=child, args=(path, point))
    proc.start()
    proc.join(120)
    assert proc.exitcode == -signal.SIGKILL
    assert load_checkpoint(path)['epoch'] == epoch
    model, opt = model_and_optimizer()
    assert resume_state(path, model, opt)[0] == epoch
    assert int(opt.state_dict()['state'][0]['step']) == epoch
    step(model, opt)  # training continues
    leftovers = [n for n in os.listdir(tmp_path) if TEMP_FILE.match(n)]
    assert len(leftovers) == (1 if epoch == 1 else 0)
    assert remove_stale_temp_files(str(tmp_path), time.time() + 1) == leftovers
    assert os.listdir(tmp_path) == ['ckpt-last.pth']
