"""One training step (forward, loss, backward, optimizer), eager or as a CUDA graph.

Both keep the epoch's loss sum and correct count on the device, so the loop syncs only to check
for divergence. On a GPU a LeNet-sized step is bound by kernel launches, not arithmetic: a CUDA
graph replays the whole step with one launch, 4.99x the eager step's images/s on an H200
(benchmarks/RESULTS.md). CPU runs always take the eager step, so CPU histories do not change.
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass

import torch
from torch import nn

from ..spec.config import RunConfig
from .device_errors import is_out_of_memory

# Eager steps per batch shape before it is captured: cuDNN/cuBLAS pick their kernels and the
# optimizer creates its state outside the capture.
WARMUP_STEPS = 3


class EagerStep:
    """The plain PyTorch step."""

    mode = "eager"
    grads_to_none = True

    def __init__(self, model: nn.Module, loss_fn, optimizer: torch.optim.Optimizer, device):
        self.model, self.loss_fn, self.optimizer = model, loss_fn, optimizer
        self.loss_sum = torch.zeros((), device=device)
        self.correct = torch.zeros((), device=device, dtype=torch.long)

    def reset(self) -> None:
        """Zero the epoch's sums in place (a graph holds their addresses)."""
        self.loss_sum.zero_()
        self.correct.zero_()

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self._step(x, y)

    def _step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=self.grads_to_none)
        out = self.model(x)
        loss = self.loss_fn(out, y)
        loss.backward()
        self.optimizer.step()
        # A NaN/inf stays in the sum, so checking it every few steps catches divergence.
        self.loss_sum += loss.detach()
        self.correct += (out.detach().argmax(dim=1) == y).sum()


_SIDE_STREAMS: dict[torch.device, torch.cuda.Stream] = {}


def side_stream(device: torch.device) -> torch.cuda.Stream:
    """The process's one warm-up stream per device. cuBLAS keeps a workspace per (handle, stream)
    for the life of the process, so a new stream per warm-up would grow memory run after run;
    PyTorch's documented pattern is one side stream, reused."""
    if device not in _SIDE_STREAMS:
        _SIDE_STREAMS[device] = torch.cuda.Stream(device)
    return _SIDE_STREAMS[device]


@dataclass
class _Captured:
    graph: torch.cuda.CUDAGraph
    x: torch.Tensor
    y: torch.Tensor


class GraphedStep(EagerStep):
    """The same step captured once per batch shape and replayed. Grads are zeroed in place, not
    set to None, so every replay writes into the tensors the graph captured."""

    grads_to_none = False

    def __init__(self, model, loss_fn, optimizer, device):
        super().__init__(model, loss_fn, optimizer, device)
        self.device = torch.device(device)
        self.graphs: dict[int, _Captured] = {}
        self.seen: Counter[int] = Counter()
        self.failed: dict[int, str] = {}  # batch size -> why its capture failed (eager steps)
        lr = optimizer.param_groups[0]["lr"]
        self.lr = lr if isinstance(lr, torch.Tensor) else None

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self._keep_lr_tensor()
        captured = self.graphs.get(len(y))
        if captured is not None:
            captured.x.copy_(x)
            captured.y.copy_(y)
            captured.graph.replay()
        elif self.failed:  # one failed capture: no more tries (each costs warm-ups and memory)
            self._step(x, y)
        elif self.seen[len(y)] < WARMUP_STEPS:
            self.seen[len(y)] += 1
            self._on_side_stream(x, y)
        else:
            self._capture(x, y)

    def _keep_lr_tensor(self) -> None:
        """A scheduler that assigns a new learning rate (older PyTorch) instead of filling the
        tensor in place would leave the graph reading the old one: copy it back in."""
        group = self.optimizer.param_groups[0]
        if self.lr is not None and group["lr"] is not self.lr:
            self.lr.fill_(group["lr"])
            group["lr"] = self.lr

    @property
    def mode(self) -> str:
        """`cuda_graph`, `eager (graph capture failed)` when no shape was captured, or which batch
        sizes stayed eager beside graphed ones."""
        if not self.failed:
            return "cuda_graph"
        if not self.graphs:
            return "eager (graph capture failed)"
        return f"cuda_graph, eager for batch {', '.join(map(str, sorted(self.failed)))}"

    def _on_side_stream(self, x: torch.Tensor, y: torch.Tensor) -> None:
        side = side_stream(self.device)
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            self._step(x, y)
        torch.cuda.current_stream().wait_stream(side)

    def _capture(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Capture the step for this batch shape and replay it on (x, y). A capture that fails
        executed nothing, so the run goes on eagerly; `mode` says which it was. Out of memory is
        raised, not swallowed: the run is retried alone, where it fits (dispatch)."""
        captured = _Captured(torch.cuda.CUDAGraph(), x.clone(), y.clone())
        current = torch.cuda.current_stream(self.device)
        try:
            with torch.cuda.graph(captured.graph, stream=side_stream(self.device)):
                self._step(captured.x, captured.y)
        except RuntimeError as error:
            # A capture_end that raises skips torch.cuda.graph's own restore of the stream.
            torch.cuda.set_stream(current)
            if is_out_of_memory(error):
                raise
            why = f"{type(error).__name__}: {str(error).splitlines()[0]}"
            self.failed[len(y)] = why
            warnings.warn(f"CUDA graph capture failed, eager steps: {why}", stacklevel=3)
            torch.cuda.synchronize()
            self._step(x, y)
            return
        self.graphs[len(y)] = captured
        captured.graph.replay()


def graphable(cfg: RunConfig, device: torch.device) -> bool:
    """On CUDA, except SGD with a schedule: SGD reads a tensor learning rate on the host."""
    return device.type == "cuda" and not (cfg.optimizer == "sgd" and cfg.scheduler != "none")


def graph_options(cfg: RunConfig, device: torch.device) -> dict:
    """Optimizer options a captured step needs: the step counter on the device (Adam, RMSprop),
    and the learning rate as a device tensor when a schedule changes it between replays."""
    options: dict = {} if cfg.optimizer == "sgd" else {"capturable": True}
    if cfg.scheduler != "none":
        options["lr"] = torch.tensor(cfg.lr, device=device)
    return options


def make_step(cfg: RunConfig, model, loss_fn, make_optimizer, device, cuda_graphs: bool = True):
    """The step for this run: graphed on CUDA where it can be, else eager."""
    if cuda_graphs and graphable(cfg, device):
        optimizer = make_optimizer(cfg, model.parameters(), **graph_options(cfg, device))
        return GraphedStep(model, loss_fn, optimizer, device)
    return EagerStep(model, loss_fn, make_optimizer(cfg, model.parameters()), device)
