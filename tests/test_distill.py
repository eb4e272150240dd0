"""Distillation: the students' distillation head (LSNet, SHViT), the teacher's loading and its refusals, the options,
and one training step of each kind of timm task (zoo.train.tasks). Whole runs with a teacher (exact resume,
torchrun) are in tests/test_train.py."""
import pytest
import timm
import torch
import torch.nn.functional as F

import zoo
from zoo.train import parse_train_args, save_training_checkpoint
from zoo.train.tasks import build_task, build_teacher, check_token_student, teacher_record
from zoo.weights import CheckpointError


def _perturb_heads(model):
    with torch.no_grad():
        for head in (model.head, model.head_dist):
            head.bn.running_mean.normal_()
            head.bn.running_var.uniform_(0.5, 2.0)
            for p in head.parameters():
                p.normal_()


@pytest.mark.parametrize('name', ['lsnet_t', 'shvit_s1'])
def test_distillation_head(name):
    """Built with ``distillation=True`` the model predicts the mean of its two heads, returns both in training once
    distilled training is on, and its weights load into the model without the second head (merged) with the same
    predictions; so does its deploy form and (LSNet) its TorchScript."""
    torch.manual_seed(0)
    model = zoo.create_model(name, num_classes=10, distillation=True).eval()
    _perturb_heads(model)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        pooled = model.forward_head(model.forward_features(x), pre_logits=True)
        out = model(x)
        torch.testing.assert_close(out, (model.head(pooled) + model.head_dist(pooled)) / 2)
        plain = zoo.load_checkpoint(zoo.create_model(name, num_classes=10), model.state_dict()).eval()
        assert not hasattr(plain, 'head_dist')
        torch.testing.assert_close(plain(x), out, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(zoo.reparameterize(model)(x), out, atol=1e-5, rtol=1e-5)
        if name == 'lsnet_t':
            torch.testing.assert_close(torch.jit.script(model)(x), out)
    model.train()
    assert model(x).shape == (2, 10)  # without distilled training: the mean, as at eval
    model.set_distilled_training()
    main, dist = model(x)
    assert main.shape == dist.shape == (2, 10) and not torch.allclose(main, dist)
    with pytest.raises(ValueError, match='distillation=True'):
        plain.set_distilled_training()


def test_a_student_with_a_distillation_head_starts_from_plain_weights(tmp_path):
    """Built with its distillation head from a plain model's file (to distil from released weights), both heads
    start as the file's head; for another class count both classifiers start at their initialization, the rest
    loaded, through --pretrained and --initial-checkpoint alike."""
    plain = zoo.create_model('lsnet_t').eval()
    path = tmp_path / 'plain.pth'
    torch.save(plain.state_dict(), path)
    overlay = dict(file=str(path))
    model = zoo.create_model('lsnet_t', distillation=True, pretrained=True, pretrained_cfg_overlay=overlay).eval()
    for k, v in plain.head.state_dict().items():
        torch.testing.assert_close(model.head_dist.state_dict()[k], v)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), plain(x))
    ten = zoo.create_model('lsnet_t', distillation=True, num_classes=10, pretrained=True,
                           pretrained_cfg_overlay=overlay)
    assert ten.head.fc.out_features == ten.head_dist.fc.out_features == 10
    torch.testing.assert_close(ten.head_dist.bn.running_var, plain.head.bn.running_var)
    torch.testing.assert_close(ten.stem[0].conv.weight, plain.stem[0].conv.weight)
    from zoo.train.engine import load_initial_checkpoint
    student = zoo.create_model('lsnet_t', distillation=True, num_classes=10)
    load_initial_checkpoint(student, str(path))
    torch.testing.assert_close(student.stages[3].blocks[0].ffn.pw1.conv.weight,
                               plain.stages[3].blocks[0].ffn.pw1.conv.weight)


def test_distillation_settings_compare_as_they_take_effect():
    """A resume compares what the options do: weights as timm's tasks resolve them, no temperature where the
    targets are hard, nothing without a teacher."""
    from zoo.train.engine import _distill_settings
    a = vars(_args('token', '--distill-target', 'hard', '--task-loss-weight', '0.5'))
    b = vars(_args('token', '--distill-target', 'hard', '--task-loss-weight', '0.5', '--distill-loss-weight', '0.5',
                   '--distill-temperature', '3'))
    assert _distill_settings(a) == _distill_settings(b)
    assert _distill_settings(a)['distill_temperature'] is None
    assert _distill_settings(vars(_args('logit')))['distill_loss_weight'] == 1.0
    assert _distill_settings(vars(_args('logit', '--distill-temperature', '3')))['distill_temperature'] == 3.0
    assert set(_distill_settings({'distill_model': ''}).values()) == {None}


def test_token_distillation_needs_a_distillation_head():
    check_token_student('lsnet_t')
    check_token_student('shvit_s1')
    with pytest.raises(ValueError, match='--distill-type token: convnext_atto has no distillation head'):
        check_token_student('convnext_atto')


@pytest.mark.parametrize('argv, message', [
    (['--distill-model', 'lsnet_b', '--distill-target', 'hard'],
     '--distill-target: hard is not allowed with --distill-type logit'),
    (['--distill-model', 'lsnet_b', '--distill-type', 'feature', '--distill-target', 'hard'],
     '--distill-target: hard is not allowed with --distill-type feature'),
    (['--distill-model', 'lsnet_b', '--distill-temperature', '0'], '--distill-temperature: 0.0 is not allowed'),
    (['--distill-checkpoint', 'teacher.pth'], '--distill-checkpoint: only allowed with --distill-model'),
    (['--task-loss-weight', '0.5'], '--task-loss-weight: only allowed with --distill-model'),
])
def test_distillation_options_are_checked(argv, message, capsys):
    with pytest.raises(SystemExit):
        parse_train_args(argv)
    assert message in capsys.readouterr().err


def _training_checkpoint(path, class_names, mean=(0.5, 0.5, 0.5)):
    model = zoo.create_model('lsnet_t', num_classes=len(class_names))
    save_training_checkpoint(str(path), {
        'arch': 'lsnet_t', 'state_dict': model.state_dict(), 'optimizer': {}, 'epoch': 0, 'num_updates': 0,
        'num_classes': len(class_names), 'class_names': list(class_names),
        'data_config': {'input_size': [3, 32, 32], 'mean': list(mean), 'std': [0.25, 0.25, 0.25]}})
    return model


def test_teacher_loads_completely_or_not_at_all(tmp_path):
    """A zoo teacher from a training checkpoint (its own normalization, its deploy form), a timm teacher from a
    file timm loads; a teacher for other classes, or for the same classes in another order, is refused."""
    path = tmp_path / 'teacher.pth'
    source = _training_checkpoint(path, ['a', 'b', 'c']).eval()
    teacher, cfg = build_teacher('lsnet_t', str(path), 3, ['a', 'b', 'c'])
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(teacher(x), source(x), atol=1e-5, rtol=1e-5)
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    assert zoo.deploy.foldable_modules(teacher) == []  # the deploy form
    assert tuple(cfg['mean']) == (0.5, 0.5, 0.5) and tuple(cfg['std']) == (0.25, 0.25, 0.25)
    with pytest.raises(ValueError, match=r'the teacher was trained on the classes a, b, c, the student on a, c, b'):
        build_teacher('lsnet_t', str(path), 3, ['a', 'c', 'b'])
    with pytest.raises(ValueError, match=r'--distill-checkpoint .*teacher.pth: the teacher predicts 3 classes, '
                                         r'the student 4'):
        build_teacher('lsnet_t', str(path), 4, None)
    with pytest.raises(ValueError, match='was trained as lsnet_t, not lsnet_s'):
        build_teacher('lsnet_s', str(path), 3, None)
    # a checkpoint that kept an EMA (which chose its model_best.pth) teaches with the EMA weights
    state = zoo.train.load_training_checkpoint(str(path))
    ema = _training_checkpoint(tmp_path / 'unused.pth', ['a', 'b', 'c']).eval()
    state['state_dict_ema'] = ema.state_dict()
    save_training_checkpoint(str(tmp_path / 'ema.pth'), state)
    teacher, _ = build_teacher('lsnet_t', str(tmp_path / 'ema.pth'), 3, ['a', 'b', 'c'])
    with torch.no_grad():
        torch.testing.assert_close(teacher(x), ema(x), atol=1e-5, rtol=1e-5)
    with pytest.raises(FileNotFoundError, match='--distill-checkpoint .*missing.pth: no such file'):
        teacher_record(parse_train_args(['--distill-model', 'lsnet_t', '--distill-checkpoint',
                                         str(tmp_path / 'missing.pth')]))

    timm_model = timm.create_model('resnet10t', num_classes=3).eval()
    timm_path = tmp_path / 'resnet.pth'
    torch.save({'model': timm_model.state_dict()}, timm_path)  # wrapped, as DeiT's teacher file is
    teacher, cfg = build_teacher('resnet10t', str(timm_path), 3, None)
    with torch.no_grad():
        torch.testing.assert_close(teacher(x), timm_model(x))
    assert not teacher.training and tuple(cfg['mean']) == timm_model.pretrained_cfg['mean']
    with pytest.raises(CheckpointError, match=r'(?s)--distill-checkpoint .*resnet.pth: cannot be loaded into resnet10t '
                                              r'with 5 classes.*fc.weight'):
        build_teacher('resnet10t', str(timm_path), 5, None)


def _args(distill_type, *extra):
    return parse_train_args(['--model', 'lsnet_t', '--distill-model', 'fasternet_t0', '--distill-type', distill_type,
                             '--smoothing', '0', *extra])


@pytest.mark.parametrize('distill_type', ['logit', 'feature', 'token'])
def test_one_distillation_step(distill_type):
    """timm's task for each kind: the loss is the weighted sum of its parts, the student (and a feature projection)
    gets gradients, the frozen teacher none and stays in eval mode, and sees the images renormalized its way."""
    torch.manual_seed(0)
    extra = ['--distill-target', 'hard'] if distill_type == 'token' else ['--distill-temperature', '2']
    args = _args(distill_type, '--task-loss-weight', '0.25', *extra)
    student = zoo.create_model('lsnet_t', num_classes=4, distillation=distill_type == 'token')
    teacher = zoo.reparameterize(zoo.create_model('fasternet_t0', num_classes=4)).requires_grad_(False)
    student_cfg = {'mean': (0.5, 0.5, 0.5), 'std': (0.25, 0.25, 0.25)}
    teacher_cfg = {'mean': (0.485, 0.456, 0.406), 'std': (0.229, 0.224, 0.225)}
    task = build_task(args, student, student_cfg, torch.device('cpu'), soft_targets=False,
                      teacher=(teacher, teacher_cfg)).train()
    assert not teacher.training
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    result = task(x, y)
    distill_key = 'distill_loss' if distill_type == 'token' else 'kd_loss'
    assert set(result) == {'loss', 'output', 'task_loss', distill_key}
    torch.testing.assert_close(result['loss'], 0.25 * result['task_loss'] + 0.75 * result[distill_key])
    with torch.no_grad():  # what the teacher saw: the student's input, renormalized to the teacher's statistics
        mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (student_cfg['mean'], student_cfg['std']))
        t_mean, t_std = (torch.tensor(v).view(1, 3, 1, 1) for v in (teacher_cfg['mean'], teacher_cfg['std']))
        t_in = (x * std + mean - t_mean) / t_std
        if distill_type == 'feature':
            target = teacher.forward_head(teacher.forward_features(t_in), pre_logits=True)
            features = task.get_trainable_module()(x)[1]
            torch.testing.assert_close(result['kd_loss'], F.mse_loss(features, target))
        else:
            teacher_logits = teacher(t_in)
            logits = student(x)[1] if distill_type == 'token' else student(x)
            if distill_type == 'token':  # hard: the teacher's top class
                expected = F.cross_entropy(logits, teacher_logits.argmax(-1))
            else:
                expected = F.kl_div(F.log_softmax(logits / 2, -1), F.log_softmax(teacher_logits / 2, -1),
                                    reduction='batchmean', log_target=True) * 4
            torch.testing.assert_close(result[distill_key], expected)
    result['loss'].backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert student.head.fc.weight.grad is not None
    if distill_type == 'token':
        assert student.head_dist.fc.weight.grad is not None
    if distill_type == 'feature':  # LSNet-T's 384 features to FasterNet-T0's 1280, trained and saved with the run
        projection = task.get_trainable_module().projection
        assert (projection.in_features, projection.out_features) == (384, 1280)
        assert projection.weight.grad is not None
        assert set(task.get_checkpoint_state()) == {'state_dict', 'task_state'}
    # the model evaluated and saved is the student
    assert timm.utils.unwrap_model(task.get_eval_model()) is student
