"""TrainStepper: accumulation, clipping, the sync-free non-finite guard, epochs."""
import pytest
import torch

from tools.engine import NonFiniteLossError, TrainStepper, amp_dtype
from tools.optim import build_optimizer, build_scheduler

OPT = {'type': 'AdamW', 'kwargs': {'lr': 1e-2, 'weight_decay': 0.05}}
SCHED = {'type': 'CosLR', 'kwargs': {'epochs': 10, 'initial_epochs': 1}}


def make(accum=1, clip=None, patience=3, seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Linear(3, 2)
    opt = build_optimizer(model, OPT)
    sched = build_scheduler(opt, SCHED, steps_per_epoch=4)
    return model, TrainStepper(model, opt, sched, accum=accum, grad_clip=clip, patience=patience)


def loss_of(model, x):
    return model(x).pow(2).mean()


def test_accumulation_matches_one_big_batch():
    x = torch.randn(8, 3, generator=torch.Generator().manual_seed(1))
    big, step_big = make(accum=1)
    assert step_big.backward(loss_of(big, x))
    small, step_small = make(accum=2)
    assert not step_small.backward(loss_of(small, x[:4]))
    assert step_small.backward(loss_of(small, x[4:]))
    for a, b in zip(big.parameters(), small.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_non_finite_loss_skips_the_update_without_touching_weights():
    model, stepper = make()
    before = [p.detach().clone() for p in model.parameters()]
    lr_before = stepper.optimizer.param_groups[0]['lr']
    stepper.backward(loss_of(model, torch.full((2, 3), float('nan'))))
    for a, b in zip(before, model.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert stepper.check() == 1
    assert stepper.optimizer.param_groups[0]['lr'] != lr_before
    stepper.backward(loss_of(model, torch.randn(2, 3)))
    assert not torch.equal(before[0], model.weight)
    assert int(stepper.streak) == 0


def test_streak_of_non_finite_steps_stops_with_a_clear_message():
    model, stepper = make(patience=2)
    for _ in range(2):
        stepper.backward(loss_of(model, torch.full((2, 3), float('inf'))))
    with pytest.raises(NonFiniteLossError, match='2 optimizer steps in a row'):
        stepper.check()


def test_clipping_bounds_the_update_of_plain_sgd():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    opt = build_optimizer(model, {'type': 'SGD', 'kwargs': {'lr': 1.0}})
    sched = build_scheduler(opt, {'type': 'CosLR', 'kwargs': {'epochs': 2, 'warmup_lr_init': 1.0}}, 10)
    stepper = TrainStepper(model, opt, sched, grad_clip=0.5)
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    stepper.backward(1e3 * loss_of(model, torch.randn(4, 3)))
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert float(stepper.last_grad_norm) > 10
    torch.testing.assert_close((after - before).norm(), torch.tensor(0.5), rtol=1e-4, atol=0)


def test_amp_setting():
    assert amp_dtype('auto', torch.device('cpu')) is None
    assert amp_dtype('auto', torch.device('cuda')) is torch.bfloat16
    assert amp_dtype(False, torch.device('cuda')) is None
    with pytest.raises(ValueError, match='amp'):
        amp_dtype('fp16', torch.device('cpu'))


def test_accumulation_does_not_span_epochs():
    model, stepper = make(accum=2)
    stepper.backward(loss_of(model, torch.randn(4, 3)))
    assert model.weight.grad is not None
    stepper.start_epoch()
    assert model.weight.grad is None and stepper.micro == 0
    assert not stepper.backward(loss_of(model, torch.randn(4, 3)))


def test_grad_norm_without_clip_leaves_gradients_untouched():
    from tools.engine import grad_norm
    model, _ = make()
    loss_of(model, torch.randn(4, 3)).backward()
    params = list(model.parameters())
    before = [p.grad.clone() for p in params]
    expected = torch.linalg.vector_norm(torch.cat([g.flatten() for g in before]))
    torch.testing.assert_close(grad_norm(params), expected, rtol=1e-6, atol=0)
    for a, p in zip(before, params):
        assert torch.equal(a, p.grad)
