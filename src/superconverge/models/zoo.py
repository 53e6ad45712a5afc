"""Reference models of the published experiments, built by name with `build`.

BatchNorm convention: torch's ``momentum`` is the weight of the *new* batch statistic, so a
moving-average fraction f (Keras ``momentum``, Caffe ``moving_average_fraction``) is torch
``momentum = 1 - f``. The super-convergence runs used f = 0.95, i.e. ``bn_momentum=0.05``
(`bn_momentum_from_fraction(0.95)`); torch's default is 0.1 (f = 0.9), Keras's 0.99.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

TORCH_BN_MOMENTUM = 0.1


def bn_momentum_from_fraction(fraction: float) -> float:
    """torch's BatchNorm ``momentum`` for a moving-average fraction (Keras/Caffe convention).

    Example:
        >>> round(bn_momentum_from_fraction(0.95), 10)
        0.05
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be in [0, 1), got {fraction!r}")
    return 1.0 - fraction


def _check_bn_momentum(value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value <= 1.0:
        raise ValueError(
            f"bn_momentum must be in (0, 1] (torch convention: 1 - moving-average fraction), "
            f"got {value!r}"
        )
    return float(value)


def keras_init_(model: nn.Module) -> nn.Module:
    """Initialise like Keras: Glorot-uniform kernels, zero biases (Dense and Conv layers).

    The published MNIST comparison was a Keras model; PyTorch's default (Kaiming-uniform,
    non-zero biases) trains measurably differently at its small learning rates.
    """
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return model


def _apply_init(model: nn.Module, init: str) -> nn.Module:
    if init == "keras":
        return keras_init_(model)
    if init != "torch":
        raise ValueError(f"init must be 'torch' or 'keras', got {init!r}")
    return model


def mlp(
    in_features: int = 64,
    hidden: Sequence[int] = (128, 64),
    num_classes: int = 10,
    dropout: float = 0.0,
    init: str = "torch",
) -> nn.Module:
    """Flatten → (Linear → ReLU [→ Dropout]) per hidden width → Linear.

    The default fits scikit-learn's 8x8 digits (64 features, 10 classes).
    """
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    layers: list[nn.Module] = [nn.Flatten()]
    width = in_features
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(dropout))
        width = size
    layers.append(nn.Linear(width, num_classes))
    return _apply_init(nn.Sequential(*layers), init)


def mnist_cnn(num_classes: int = 10, in_channels: int = 1, init: str = "torch") -> nn.Module:
    """The small CNN of the published Keras MNIST comparison (CLR vs Adam vs SGD), exactly.

    Conv 32 3x3 stride 2 + ReLU; Conv 16 3x3 + ReLU; Conv 20 3x3 stride 2 + ReLU; flatten;
    Dense 64 (no activation); Dense 10; no padding; 40,558 parameters for 1x28x28 inputs.
    Use ``init="keras"`` for the Glorot-uniform / zero-bias start of the original.
    """
    model = nn.Sequential(
        nn.Conv2d(in_channels, 32, 3, stride=2),
        nn.ReLU(),
        nn.Conv2d(32, 16, 3),
        nn.ReLU(),
        nn.Conv2d(16, 20, 3, stride=2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(20 * 5 * 5, 64),
        nn.Linear(64, num_classes),
    )
    return _apply_init(model, init)


class _KerasSameConv(nn.Module):
    """Conv with Keras 'same' padding: for stride 2 the extra row/column goes bottom/right."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1) -> None:
        super().__init__()
        total = max(kernel - stride, 0)
        self.pad = nn.ZeroPad2d((total // 2, total - total // 2, total // 2, total - total // 2))
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.conv(self.pad(x))
        return out


def _conv_bn_relu(
    in_ch: int, out_ch: int, kernel: int, bn_momentum: float, stride: int = 1, same: bool = True
) -> nn.Sequential:
    conv = (
        _KerasSameConv(in_ch, out_ch, kernel, stride) if same else nn.Conv2d(in_ch, out_ch, kernel)
    )
    return nn.Sequential(conv, nn.BatchNorm2d(out_ch, momentum=bn_momentum), nn.ReLU())


class _ConcatBlock(nn.Module):
    """Conv narrow 3x3 → Conv wide 3x3, concatenated with the input, then a 1x1 Conv back."""

    def __init__(self, wide: int, narrow: int, bn_momentum: float) -> None:
        super().__init__()
        self.branch = nn.Sequential(
            _conv_bn_relu(wide, narrow, 3, bn_momentum),
            _conv_bn_relu(narrow, wide, 3, bn_momentum),
        )
        self.merge = _conv_bn_relu(2 * wide, wide, 1, bn_momentum)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.merge(torch.cat([x, self.branch(x)], dim=1))
        return out


def cifar_resnet(
    num_classes: int = 10,
    width: float = 1.0,
    blocks: int = 8,
    bn_momentum: float = TORCH_BN_MOMENTUM,
) -> nn.Module:
    """The residual network of the published CIFAR-10 super-convergence comparison.

    Conv 128 3x3 stride 2 'same' → BN → ReLU; `blocks` blocks of [Conv 32 3x3 → BN → ReLU →
    Conv 128 3x3 → BN → ReLU, concatenated with the block input (256 channels) → Conv 128 1x1 →
    BN → ReLU]; Conv 128 3x3 'valid' → BN → ReLU → global average pool (14x14) → Dense 10.
    `width` scales 128 and 32 (e.g. 0.25 gives 32 and 8 for CPU-sized runs). The published runs
    used a BN moving-average fraction of 0.95: ``bn_momentum=0.05``.
    """
    if not 0.0 < width <= 8.0:
        raise ValueError(f"width must be in (0, 8], got {width!r}")
    bn_momentum = _check_bn_momentum(bn_momentum)
    wide, narrow = max(1, round(128 * width)), max(1, round(32 * width))
    return nn.Sequential(
        _conv_bn_relu(3, wide, 3, bn_momentum, stride=2),
        *[_ConcatBlock(wide, narrow, bn_momentum) for _ in range(blocks)],
        _conv_bn_relu(wide, wide, 3, bn_momentum, same=False),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(wide, num_classes),
    )


class _BasicBlock(nn.Module):
    """He et al.'s CIFAR block; option A shortcut (strided identity, zero-padded channels)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, bn_momentum: float) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch, momentum=bn_momentum)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch, momentum=bn_momentum)
        self.stride, self.extra = stride, out_ch - in_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x[:, :, :: self.stride, :: self.stride] if self.stride > 1 else x
        if self.extra:
            half = self.extra // 2
            shortcut = nn.functional.pad(shortcut, (0, 0, 0, 0, half, self.extra - half))
        return torch.relu(out + shortcut)


def resnet56(
    num_classes: int = 10, depth: int = 56, bn_momentum: float = TORCH_BN_MOMENTUM
) -> nn.Module:
    """He et al. (arXiv:1512.03385 §4.2) CIFAR ResNet, the network of Smith's papers.

    depth = 6n + 2: a 3x3 conv with 16 filters, three stages of n blocks at 16, 32, 64 filters
    (stride 2 between stages), global average pool, Dense. Option A shortcuts, as in the paper
    (0.85M parameters at depth 56).
    """
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"depth must be 6n + 2 with n >= 1 (20, 32, 44, 56, 110), got {depth!r}")
    bn_momentum = _check_bn_momentum(bn_momentum)
    n = (depth - 2) // 6
    layers: list[nn.Module] = [
        nn.Conv2d(3, 16, 3, padding=1, bias=False),
        nn.BatchNorm2d(16, momentum=bn_momentum),
        nn.ReLU(),
    ]
    in_ch = 16
    for stage, out_ch in enumerate((16, 32, 64)):
        for index in range(n):
            stride = 2 if stage > 0 and index == 0 else 1
            layers.append(_BasicBlock(in_ch, out_ch, stride, bn_momentum))
            in_ch = out_ch
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes)]
    model = nn.Sequential(*layers)
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(module.weight)
    return model


class _Residual(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = x + self.inner(x)
        return out


class _Scale(nn.Module):
    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


def resnet9(
    num_classes: int = 10, width: float = 1.0, bn_momentum: float = TORCH_BN_MOMENTUM
) -> nn.Module:
    """The fast CIFAR-10 ResNet-9 of the DAWNBench era (D. Page, "How to train your ResNet").

    prep conv 64; layer1 conv 128 + max-pool + residual(conv 128, conv 128); layer2 conv 256 +
    max-pool; layer3 conv 512 + max-pool + residual(conv 512, conv 512); global max-pool;
    Dense 10 with outputs scaled by 0.125. `width` scales every channel count.
    """
    if not 0.0 < width <= 8.0:
        raise ValueError(f"width must be in (0, 8], got {width!r}")
    bn_momentum = _check_bn_momentum(bn_momentum)
    c = [max(1, round(k * width)) for k in (64, 128, 256, 512)]

    def block(i: int, o: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(i, o, 3, padding=1, bias=False),
            nn.BatchNorm2d(o, momentum=bn_momentum),
            nn.ReLU(),
        )

    return nn.Sequential(
        block(3, c[0]),
        block(c[0], c[1]),
        nn.MaxPool2d(2),
        _Residual(nn.Sequential(block(c[1], c[1]), block(c[1], c[1]))),
        block(c[1], c[2]),
        nn.MaxPool2d(2),
        block(c[2], c[3]),
        nn.MaxPool2d(2),
        _Residual(nn.Sequential(block(c[3], c[3]), block(c[3], c[3]))),
        nn.AdaptiveMaxPool2d(1),
        nn.Flatten(),
        nn.Linear(c[3], num_classes, bias=False),
        _Scale(0.125),
    )


MODELS: dict[str, Callable[..., nn.Module]] = {
    "mlp": mlp,
    "mnist-cnn": mnist_cnn,
    "cifar-resnet": cifar_resnet,
    "resnet56": resnet56,
    "resnet9": resnet9,
}


def build(name: str, **options: Any) -> nn.Module:
    """Build a reference model by name: ``mlp``, ``mnist-cnn``, ``cifar-resnet``, ``resnet56``,
    ``resnet9``. Options are the keyword arguments of the builder; unknown ones are rejected.

    Example:
        >>> sum(p.numel() for p in build("mnist-cnn").parameters())
        40558
    """
    builder = MODELS.get(name)
    if builder is None:
        raise ValueError(f"name must be one of {', '.join(MODELS)}, got {name!r}")
    allowed = set(inspect.signature(builder).parameters)
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValueError(f"unknown options for {name}: {unknown}; allowed: {sorted(allowed)}")
    return builder(**options)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
