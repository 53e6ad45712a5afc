import pytest
import torch

from superconverge.models import bn_momentum_from_fraction, build, count_parameters


@pytest.mark.parametrize(
    ("name", "options", "input_shape", "parameters"),
    [
        ("mlp", {}, (4, 1, 8, 8), 17226),
        (
            "mlp",
            {"in_features": 5, "hidden": (7,), "num_classes": 3},
            (4, 5),
            5 * 7 + 7 + 7 * 3 + 3,
        ),
        ("mnist-cnn", {}, (4, 1, 28, 28), 40558),
        ("cifar-resnet", {"width": 0.25}, (2, 3, 32, 32), None),
        ("resnet56", {"depth": 20}, (2, 3, 32, 32), 269722),
        ("resnet9", {"width": 0.125}, (2, 3, 32, 32), None),
    ],
)
def test_output_shapes_and_known_parameter_counts(name, options, input_shape, parameters):
    model = build(name, **options)
    out = model(torch.randn(input_shape))
    assert out.shape == (input_shape[0], options.get("num_classes", 10))
    if parameters is not None:
        assert count_parameters(model) == parameters


def test_full_size_parameter_counts():
    assert count_parameters(build("resnet56")) == 853018  # He et al.: 0.85M
    assert count_parameters(build("resnet9")) == 6573120
    model = build("cifar-resnet")
    first_conv = model[0][0].conv
    assert (first_conv.out_channels, first_conv.stride) == (128, (2, 2))
    features = model[:-3](torch.zeros(1, 3, 32, 32))
    assert features.shape == (1, 128, 14, 14)  # pooled over 14x14 as published


def test_bn_momentum_option_reaches_every_batchnorm():
    model = build("cifar-resnet", width=0.25, bn_momentum=bn_momentum_from_fraction(0.95))
    momenta = [m.momentum for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(momenta) == 2 + 3 * 8 and momenta == pytest.approx([0.05] * len(momenta))


def test_keras_init_zeroes_biases():
    model = build("mnist-cnn", init="keras")
    assert all(torch.all(m.bias == 0) for m in model.modules() if isinstance(m, torch.nn.Conv2d))


@pytest.mark.parametrize(
    ("name", "options", "shape"),
    [
        ("mlp", {}, (64, 1, 8, 8)),
        ("mnist-cnn", {}, (64, 1, 28, 28)),
        ("cifar-resnet", {"width": 0.125, "blocks": 2}, (32, 3, 32, 32)),
    ],
)
def test_a_few_steps_lower_the_loss(name, options, shape):
    torch.manual_seed(0)
    model = build(name, **options)
    inputs, targets = torch.randn(shape), torch.randint(0, 10, (shape[0],))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(inputs), targets)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("vgg16", {}, "name must be one of mlp, mnist-cnn"),
        ("mlp", {"widths": (3,)}, r"unknown options for mlp: \['widths'\]"),
        ("resnet56", {"depth": 51}, r"depth must be 6n \+ 2"),
        ("cifar-resnet", {"bn_momentum": 0.0}, r"bn_momentum must be in \(0, 1\]"),
        ("mnist-cnn", {"init": "glorot"}, "init must be 'torch' or 'keras'"),
    ],
)
def test_bad_names_and_options(name, options, message):
    with pytest.raises(ValueError, match=message):
        build(name, **options)
