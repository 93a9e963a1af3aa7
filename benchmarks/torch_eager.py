"""(d) PyTorch eager: the same step with torch ops, gradients written out by hand.

A fair eager implementation: fused ``addmm`` and ``softmax`` kernels, in-place ReLU
backward and in-place optimizer updates, no autograd bookkeeping, no dinputs for the
first layer (autograd would not compute them either).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from implementations import Impl, Spec


def torch_step(spec: Spec, X: np.ndarray, y: np.ndarray, params: list, device: str) -> Impl:
    import torch

    dev = torch.device(device)
    Xt = torch.from_numpy(X).to(dev)
    yt = torch.from_numpy(y).to(dev)
    rows = torch.arange(Xt.shape[0], device=dev)
    Ws = [torch.from_numpy(W).to(dev, copy=True) for W, _ in params]
    bs = [torch.from_numpy(b).to(dev, copy=True) for _, b in params]
    update = _sgd(Ws, bs) if spec.optimizer == "sgd" else _adam(Ws, bs)

    @torch.no_grad()
    def step() -> None:
        acts = [Xt]
        for i, (W, b) in enumerate(zip(Ws, bs, strict=True)):
            z = torch.addmm(b, acts[-1], W)
            acts.append(torch.relu(z) if i < len(Ws) - 1 else z)
        probs = torch.softmax(acts.pop(), dim=1)
        -torch.log(probs.clamp(1e-7, 1 - 1e-7)[rows, yt]).mean()  # the loss value
        d = probs.clone()
        d[rows, yt] -= 1
        d /= Xt.shape[0]
        grads = []
        for i in reversed(range(len(Ws))):
            grads.append((acts[i].T @ d, d.sum(0, keepdim=True)))
            if i:
                d = (d @ Ws[i].T).masked_fill_(acts[i] <= 0, 0)
        update(grads[::-1])

    def run(k: int) -> None:
        for _ in range(k):
            step()

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    def parameters() -> list[np.ndarray]:
        return [t.cpu().numpy().copy() for pair in zip(Ws, bs, strict=True) for t in pair]

    return Impl("torch eager", "torch", run, sync, lambda: Ws + bs, parameters=parameters)


def _flat(grads: list) -> list:
    """[(dW, db), ...] as [dW1, dW2, ..., db1, db2, ...], the order of ``Ws + bs``."""
    return [dw for dw, _ in grads] + [db for _, db in grads]


def _sgd(Ws: list, bs: list, lr: float = 1.0, momentum: float = 0.9) -> Any:
    import torch

    moms = [torch.zeros_like(p) for p in Ws + bs]

    def update(grads: list) -> None:
        for p, m, g in zip(Ws + bs, moms, _flat(grads), strict=True):
            m.mul_(momentum).add_(g, alpha=-lr)  # m = momentum * m - lr * g
            p.add_(m)

    return update


def _adam(
    Ws: list, bs: list, lr: float = 0.001, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-7
) -> Any:
    import torch

    params = Ws + bs
    moms = [torch.zeros_like(p) for p in params]
    caches = [torch.zeros_like(p) for p in params]
    step = [0]

    def update(grads: list) -> None:
        step[0] += 1
        c1, c2 = 1 - b1 ** step[0], 1 - b2 ** step[0]
        for p, m, v, g in zip(params, moms, caches, _flat(grads), strict=True):
            m.mul_(b1).add_(g, alpha=1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            p.addcdiv_(m, (v / c2).sqrt_().add_(eps), value=-lr / c1)

    return update


def torch_autograd_step(
    spec: Spec, X: np.ndarray, y: np.ndarray, params: list, device: str
) -> Impl:
    """(d') PyTorch as most of its users write it: ``nn.Linear`` layers, ``CrossEntropyLoss``,
    ``loss.backward()`` and ``torch.optim``, eager mode with autograd.

    Same data, same starting weights, same hyperparameters. ``torch.optim.SGD`` keeps its
    momentum buffer as ``v = momentum * v + g`` and steps by ``lr * v``: with a constant
    learning rate that is the book's update, scaled differently, so the work is the same.
    """
    import torch

    dev = torch.device(device)
    Xt = torch.from_numpy(X).to(dev)
    yt = torch.from_numpy(y).to(dev)
    model, loss_fn, optimizer = torch_module(spec, params, dev)

    def run(k: int) -> None:
        for _ in range(k):
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(Xt), yt)
            loss.backward()
            optimizer.step()

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    linears = [module for module in model if hasattr(module, "weight")]

    def parameters() -> list[np.ndarray]:
        pairs = [(lin.weight.detach().T, lin.bias.detach()[None, :]) for lin in linears]
        return [t.cpu().numpy().copy() for pair in pairs for t in pair]

    return Impl(
        "torch autograd",
        "torch",
        run,
        sync,
        lambda: [p.detach() for p in model.parameters()],
        parameters=parameters,
    )


def torch_compiled_step(
    spec: Spec, X: np.ndarray, y: np.ndarray, params: list, device: str
) -> Impl:
    """(d'') The autograd step as torch's own guide compiles it: the module's forward and the
    loss (and the accuracy nnx reports) under ``torch.compile``, whose backward AOTAutograd
    compiles with it, and ``torch.optim.Adam``'s step compiled apart, as its tutorial on
    compiling the optimizer does (``loss.backward()`` splits the two). Inductor, fullgraph.
    """
    import torch

    dev = torch.device(device)
    Xt = torch.from_numpy(X).to(dev)
    yt = torch.from_numpy(y).to(dev)
    model, loss_fn, optimizer = torch_module(spec, params, dev)

    @torch.compile(fullgraph=True)
    def forward() -> tuple[Any, Any]:
        outputs = model(Xt)
        accuracy = (outputs.argmax(dim=1) == yt).float().mean()
        return loss_fn(outputs, yt), accuracy

    @torch.compile(fullgraph=False)
    def update() -> None:
        optimizer.step()

    def run(k: int) -> None:
        for _ in range(k):
            optimizer.zero_grad(set_to_none=True)
            loss, _ = forward()
            loss.backward()
            update()

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    return Impl(
        "torch.compile", "torch", run, sync, lambda: [p.detach() for p in model.parameters()]
    )


def torch_module(spec: Spec, params: list, dev: Any) -> tuple[Any, Any, Any]:
    """``(nn.Sequential, CrossEntropyLoss, torch.optim optimizer)`` from the same weights."""
    import torch
    from torch import nn

    layers: list[Any] = []
    for i, (W, b) in enumerate(params):
        linear = nn.Linear(*W.shape).to(dev)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(W.T.copy()))  # nn.Linear keeps (out, in)
            linear.bias.copy_(torch.from_numpy(b[0]))
        layers += [linear] if i == len(params) - 1 else [linear, nn.ReLU()]
    model = nn.Sequential(*layers)
    loss_fn = nn.CrossEntropyLoss()
    if spec.optimizer == "sgd":
        optimizer: Any = torch.optim.SGD(model.parameters(), lr=1.0, momentum=0.9)
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=0.001, eps=1e-7)
    return model, loss_fn, optimizer
