"""The two classifiers of the study, exactly as docs/study.md describes them: `FCNet` and a
configurable `LeNet5`, and `build_model(cfg)`."""

from __future__ import annotations

import torch
from torch import nn

from ..spec.config import LENET_DEFAULTS, RunConfig

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "leaky_relu": nn.LeakyReLU}
POOLS = {"avg": nn.AvgPool2d, "max": nn.MaxPool2d}
DROPOUT_P = 0.3


def _xavier_linears(module: nn.Module) -> None:
    """Xavier-uniform weights for every Linear; biases keep PyTorch's default init."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            nn.init.xavier_uniform_(layer.weight)


class FCNet(nn.Module):
    """784 -> 512 -> ReLU -> 10 (407,050 parameters)."""

    def __init__(self, softmax: bool = False):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 10)]
        if softmax:
            layers.append(nn.Softmax(dim=1))
        self.net = nn.Sequential(*layers)
        _xavier_linears(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class LeNet5(nn.Module):
    """LeNet-5 with the study's options; base case (6,16,120, tanh, avg) has 61,706 parameters."""

    def __init__(
        self,
        activation: str = LENET_DEFAULTS["activation"],
        pooling: str = LENET_DEFAULTS["pooling"],
        batchnorm: bool = LENET_DEFAULTS["batchnorm"],
        dropout: bool = LENET_DEFAULTS["dropout"],
        channels: tuple[int, int, int] = LENET_DEFAULTS["channels"],
        softmax: bool = False,
    ):
        super().__init__()
        c1, c2, c3 = channels
        act, pool = ACTIVATIONS[activation], POOLS[pooling]

        def conv_block(c_in: int, c_out: int, padding: int) -> list[nn.Module]:
            block: list[nn.Module] = [nn.Conv2d(c_in, c_out, kernel_size=5, padding=padding)]
            return block + ([nn.BatchNorm2d(c_out)] if batchnorm else []) + [act()]

        self.features = nn.Sequential(
            *conv_block(1, c1, padding=2), pool(2),  # [N,c1,28,28] -> [N,c1,14,14]
            *conv_block(c1, c2, padding=0), pool(2),  # [N,c2,10,10] -> [N,c2,5,5]
            *conv_block(c2, c3, padding=0), nn.Flatten(),  # [N,c3,1,1] -> [N,c3]
        )  # fmt: skip
        # Dropout sits before the activation, as in the study.
        head: list[nn.Module] = [nn.Linear(c3, 84)]
        head += [nn.Dropout(DROPOUT_P)] if dropout else []
        head += [act(), nn.Linear(84, 10)]
        head += [nn.Softmax(dim=1)] if softmax else []
        self.classifier = nn.Sequential(*head)
        _xavier_linears(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def build_model(cfg: RunConfig) -> nn.Module:
    """The network a config describes; it ends in a softmax only for the MSE loss."""
    softmax = cfg.loss == "mse"
    if cfg.model == "fc":
        return FCNet(softmax=softmax)
    # A lenet5 config always has every LeNet-5 option (RunConfig fills in the base case).
    return LeNet5(
        activation=cfg.activation,
        pooling=cfg.pooling,
        batchnorm=cfg.batchnorm,
        dropout=cfg.dropout,
        channels=cfg.channels,
        softmax=softmax,
    )


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
