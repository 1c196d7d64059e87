"""The networks match docs/study.md: shapes, parameter counts, and what each option changes."""

import pytest
import torch
from torch import nn

from fmnist_ray.spec.config import RunConfig
from fmnist_ray.training.models import FCNet, LeNet5, build_model, count_parameters

X = torch.rand(4, 1, 28, 28)


def layer_types(model: nn.Module) -> list[type]:
    return [type(m) for m in model.modules() if not isinstance(m, nn.Sequential | LeNet5 | FCNet)]


def test_parameter_counts():
    assert count_parameters(build_model(RunConfig(model="fc"))) == 407_050
    assert count_parameters(build_model(RunConfig())) == 61_706


@pytest.mark.parametrize("pooling", ["avg", "max"])
@pytest.mark.parametrize("batchnorm", [False, True])
def test_output_shapes_and_intermediate_shapes(pooling, batchnorm):
    """docs/study.md's shapes after each convolution and each pooling, for both poolings."""
    model = LeNet5(channels=(8, 20, 100), pooling=pooling, batchnorm=batchnorm)
    x, seen = X, []
    for layer in model.features:
        x = layer(x)
        seen.append((type(layer), tuple(x.shape)))
    convolved = [shape for kind, shape in seen if kind is nn.Conv2d]
    pooled = [shape for kind, shape in seen if kind in (nn.AvgPool2d, nn.MaxPool2d)]
    assert convolved == [(4, 8, 28, 28), (4, 20, 10, 10), (4, 100, 1, 1)]
    assert pooled == [(4, 8, 14, 14), (4, 20, 5, 5)]
    assert seen[-1] == (nn.Flatten, (4, 100))
    assert model(X).shape == (4, 10)
    assert FCNet()(X).shape == (4, 10)


def test_base_lenet_layer_order():
    assert layer_types(LeNet5()) == [
        nn.Conv2d, nn.Tanh, nn.AvgPool2d, nn.Conv2d, nn.Tanh, nn.AvgPool2d,
        nn.Conv2d, nn.Tanh, nn.Flatten, nn.Linear, nn.Tanh, nn.Linear,
    ]  # fmt: skip


@pytest.mark.parametrize(
    "activation, expected", [("relu", nn.ReLU), ("leaky_relu", nn.LeakyReLU), ("tanh", nn.Tanh)]
)
def test_activation_everywhere(activation, expected):
    types = layer_types(LeNet5(activation=activation))
    assert types.count(expected) == 4


def test_max_pooling():
    types = layer_types(LeNet5(pooling="max"))
    assert types.count(nn.MaxPool2d) == 2
    assert nn.AvgPool2d not in types


def test_batchnorm_after_each_conv_before_activation():
    types = layer_types(LeNet5(batchnorm=True))
    assert types[:3] == [nn.Conv2d, nn.BatchNorm2d, nn.Tanh]
    assert types.count(nn.BatchNorm2d) == 3
    bn = [
        m
        for m in LeNet5(batchnorm=True, channels=(4, 5, 7)).modules()
        if isinstance(m, nn.BatchNorm2d)
    ]
    assert [m.num_features for m in bn] == [4, 5, 7]


def test_dropout_sits_before_the_activation_in_the_head():
    head = [type(m) for m in LeNet5(dropout=True).classifier]
    assert head == [nn.Linear, nn.Dropout, nn.Tanh, nn.Linear]
    assert LeNet5(dropout=True).classifier[1].p == 0.3


def test_softmax_only_for_mse():
    for model in ("fc", "lenet5"):
        assert nn.Softmax not in layer_types(build_model(RunConfig(model=model)))
        net = build_model(RunConfig(model=model, loss="mse"))
        assert isinstance(list(net.modules())[-1], nn.Softmax)
        assert torch.allclose(net(X).sum(dim=1), torch.ones(4))


def test_wide_channels_parameter_count():
    model = build_model(RunConfig(channels=(32, 64, 256)))
    expected = (32 * 25 + 32) + (64 * 32 * 25 + 64) + (256 * 64 * 25 + 256) + (256 * 84 + 84) + 850
    assert count_parameters(model) == expected


def test_linear_layers_are_xavier_uniform():
    torch.manual_seed(0)
    for model in (FCNet(), LeNet5()):
        for layer in (m for m in model.modules() if isinstance(m, nn.Linear)):
            fan_in, fan_out = layer.weight.shape[1], layer.weight.shape[0]
            bound = (6 / (fan_in + fan_out)) ** 0.5
            assert layer.weight.abs().max() <= bound
            assert layer.weight.abs().max() > 0.9 * bound  # not PyTorch's default (smaller) bound
