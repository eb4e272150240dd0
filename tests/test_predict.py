"""tools/predict.py: the top-k classes of images, on the two photographs scikit-learn ships (china.jpg,
flower.jpg), in every runtime, train and deploy form. (On the digits with a trained checkpoint its top-1 equals
tools/validate.py's: tests/test_train.py.)"""
import json
import os
import sys

import pytest
import sklearn
import torch
from timm.data import ImageNetInfo

import zoo
from conftest import randomize_norms
from zoo.train import DatasetError, predict
from zoo.train.predict import image_paths

PHOTOS = os.path.join(os.path.dirname(sklearn.__file__), 'datasets', 'images')
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'tools'))


@pytest.fixture(scope='module')
def weights(tmp_path_factory):
    """A SHViT-S1 zoo file with non-trivial norms (random weights: what matters is that every path agrees)."""
    path = tmp_path_factory.mktemp('weights') / 'shvit_s1.pth'
    torch.manual_seed(0)
    torch.save(randomize_norms(zoo.create_model('shvit_s1')).state_dict(), path)
    return str(path)


def _check(results, topk):
    assert [os.path.basename(r['image']) for r in results] == ['china.jpg', 'flower.jpg']
    info = ImageNetInfo()
    for r in results:
        probs = [t['prob'] for t in r['top']]
        assert len(probs) == topk and probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
        assert all(t['label'] == info.index_to_description(t['index']) for t in r['top'])


def test_photos_give_the_same_top_k_in_every_form_and_runtime(weights):
    eager = predict([PHOTOS], 'shvit_s1', weights, topk=5)
    _check(eager, 5)
    for kwargs in (dict(deploy=True), dict(deploy=True, runtime='onnx'), dict(runtime='onnx')):
        other = predict([os.path.join(PHOTOS, '*.jpg')], 'shvit_s1', weights, topk=5, batch_size=1, **kwargs)
        assert [[t['index'] for t in r['top']] for r in other] == [[t['index'] for t in r['top']] for r in eager]
        for a, b in zip(eager, other):
            assert [t['prob'] for t in b['top']] == pytest.approx([t['prob'] for t in a['top']], abs=1e-5)


@pytest.mark.slow
def test_compiled_runtime_gives_the_eager_top_k(weights):
    eager = predict([PHOTOS], 'shvit_s1', weights, topk=3, img_size=64)
    compiled = predict([PHOTOS], 'shvit_s1', weights, topk=3, img_size=64, runtime='compiled')
    assert [[t['index'] for t in r['top']] for r in compiled] == [[t['index'] for t in r['top']] for r in eager]


def test_inputs_files_folders_and_patterns(tmp_path):
    china = os.path.join(PHOTOS, 'china.jpg')
    # a file, a folder (recursively) and a pattern; each image once, in the order given
    assert image_paths([china, PHOTOS, os.path.join(PHOTOS, '*.jpg')]) == [china, os.path.join(PHOTOS, 'flower.jpg')]
    with pytest.raises(FileNotFoundError, match=rf'input {tmp_path / "nope"}: no such file or folder'):
        predict([str(tmp_path / 'nope')], 'shvit_s1')
    with pytest.raises(DatasetError, match=rf'input {tmp_path}: the folder holds no images'):
        predict([str(tmp_path)], 'shvit_s1')
    (tmp_path / 'broken.png').write_bytes(b'\x89PNG\r\n\x1a\n not an image')
    with pytest.raises(DatasetError, match=r'broken.png: cannot be read as an image'):
        predict([str(tmp_path)], 'shvit_s1')


@pytest.mark.parametrize('kwargs, message', [
    (dict(runtime='tflite'), "runtime='tflite' is not allowed; runtime must be one of eager, compiled, onnx"),
    (dict(topk=0), 'topk=0 is not allowed; topk must be a positive integer'),
    (dict(batch_size=-1), 'batch_size=-1 is not allowed'),
])
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        predict([PHOTOS], 'shvit_s1', **kwargs)


def test_command_writes_a_table_and_json(weights, tmp_path, capsys):
    import predict as tool
    tool.main([PHOTOS, '--model', 'shvit_s1', '--checkpoint', weights, '--topk', '2', '--no-progress',
               '--json', str(tmp_path / 'out.json')])
    table = capsys.readouterr().out.splitlines()
    results = json.load(open(tmp_path / 'out.json'))
    _check(results, 2)
    assert len(table) == 4 and table[0].split()[-1] in results[0]['top'][0]['label']
    assert table[0].startswith(results[0]['image'])
