"""The experiment folder is locked for the whole run: a second run is refused naming the holder's
PID and start time; a killed holder's lock is taken over; a killed run's temporary files are
removed at start-up (older than the lock), the others are kept."""
import os
import signal
import subprocess
import sys
import time

import pytest

import main
from conftest import torch_settings
from utils.io import remove_stale_temp_files
from utils.lock import ExperimentLock, ExperimentLockedError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOLD = ("import sys, time; from utils.lock import ExperimentLock; lock = ExperimentLock(sys.argv[1]); "
        "lock.acquire(); print('locked', flush=True); time.sleep(120)")


@pytest.fixture
def holder():
    """Factory: a child process holding the lock of ``folder``; killed (SIGKILL) at the end."""
    children = []

    def start(folder):
        child = subprocess.Popen([sys.executable, '-c', HOLD, str(folder)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        children.append(child)
        assert child.stdout.readline().strip() == 'locked'
        return child
    yield start
    for child in children:
        child.kill()
        child.wait()


def test_second_holder_is_refused_with_pid_and_start_time(tmp_path, holder):
    child = holder(tmp_path / 'exp')
    with pytest.raises(ExperimentLockedError) as err:
        ExperimentLock(tmp_path / 'exp').acquire()
    message = str(err.value)
    assert f'PID {child.pid} on ' in message and 'started ' + time.strftime('%Y-%m-%d', time.gmtime()) in message
    assert str(tmp_path / 'exp') in message and '\n' not in message


def test_lock_of_a_killed_run_is_taken_over(tmp_path, holder):
    child = holder(tmp_path / 'exp')
    child.send_signal(signal.SIGKILL)
    child.wait()
    with ExperimentLock(tmp_path / 'exp') as lock:
        assert lock.stale['pid'] == child.pid
        with pytest.raises(ExperimentLockedError, match=f'PID {os.getpid()} '):
            ExperimentLock(tmp_path / 'exp').acquire()
    with ExperimentLock(tmp_path / 'exp') as again:  # a clean release leaves nothing stale
        assert again.stale is None


def test_pid_fallback_without_flock(tmp_path, monkeypatch, holder):
    import utils.lock
    child = holder(tmp_path / 'live')
    monkeypatch.setattr(utils.lock, 'fcntl', None)
    with pytest.raises(ExperimentLockedError, match=f'PID {child.pid} '):
        ExperimentLock(tmp_path / 'live').acquire()
    child.kill()
    child.wait()
    with ExperimentLock(tmp_path / 'live') as lock:
        assert lock.stale['pid'] == child.pid


def test_main_refuses_a_second_run_before_writing_anything(tmp_path, holder, tiny_config):
    config = tiny_config()
    folder = tmp_path / 'exps' / 'pretrain_tiny' / 'cfgs' / 'busy'
    child = holder(folder)
    with torch_settings(), pytest.raises(SystemExit) as err:
        main.main(['--config', config, '--exp', str(tmp_path / 'exps'), '--exp_name', 'busy', '--device', 'cpu',
                   '--num_workers', '0'])
    assert str(err.value).startswith(f'main.py: error: {folder} is in use by another run (PID {child.pid} on ')
    assert sorted(os.listdir(folder)) == ['.lock']


def test_stale_temp_files_older_than_the_lock_are_removed(tmp_path):
    old = ['.ckpt-last.pth.0123abcd.tmp', '.config.yaml.deadbeef.tmp']
    keep = ['ckpt-last.pth', '.ckpt-last.pth.tmp', 'notes.0123abcd.tmp']
    for name in old + keep:
        (tmp_path / name).write_text('x')
        os.utime(tmp_path / name, (time.time() - 60, time.time() - 60))
    (tmp_path / '.log.txt.feedf00d.tmp').write_text('new')  # written after the lock: another writer's
    removed = remove_stale_temp_files(str(tmp_path), before=time.time() - 30)
    assert removed == sorted(old)
    assert sorted(os.listdir(tmp_path)) == sorted(keep + ['.log.txt.feedf00d.tmp'])


def test_trainpartseg_refuses_a_locked_folder(tmp_path, holder):
    import trainpartseg
    root = tmp_path / 'parts'
    root.mkdir()
    folder = tmp_path / 'exps' / 'partseg' / 'seg'
    child = holder(folder)
    with pytest.raises(SystemExit) as err:
        trainpartseg.main(['--root', str(root), '--exp', str(tmp_path / 'exps'), '--log_dir', 'seg', '--device', 'cpu',
                           '--epoch', '2', '--warmup_epoch', '1'])
    assert str(err.value).startswith(f'trainpartseg.py: error: {folder} is in use by another run (PID {child.pid} on ')
    assert sorted(os.listdir(folder)) == ['.lock']
