"""Benchmark of the batched top-k MoE layer (simulations.moe.TopKMoE), one training step at a time.

Times forward + backward of loss = sum over models of the per-model MSE against a random target, for
impl = dense, sparse and auto, against two references run in the same process on the same weights:
  loop: for each model its own top-k, then for each expert gather its tokens and run it (how most MoE
        code is written);
  vmap: torch.func.vmap over the model axis of a one-model dense top-k function of the weight tensors.
Reports ms per step (best of --repeats), the ratios loop/ours and vmap/ours, and the GFLOP/s achieved
on active-expert FLOPs, counted as forward + backward = 3 x 2*M*N*k*(d_in*d_hidden + d_hidden*d_out)
(router, softmax, gathers and the inactive experts a dense impl also computes are not counted), next to
the same device's fp32 GEMM rate (2048 x 2048 matmul). Prints one markdown table and nothing else.

    python bench/layer.py [--device cpu|cuda] [--repeats 5] [--shapes full|quick]
"""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Callable

import torch
from torch.func import vmap

from simulations.moe import TopKMoE

FULL_SHAPES = [  # (M, N, T, k, d_in, d_hidden)
    (64, 512, 8, 2, 16, 32),
    (64, 512, 16, 4, 16, 32),
    (32, 1024, 32, 4, 32, 32),
]
QUICK_SHAPES = [(16, 128, 8, 2, 8, 16)]
D_OUT = 1


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_ms(steps: dict[str, Callable[[], None]], device: torch.device, repeats: int,
            min_time: float = 0.05) -> dict[str, float]:
    """Best over `repeats` of the mean ms of one step, per named step function. Each repeat runs at
    least `min_time` seconds; the functions take turns within each repeat, so load from other
    processes hits them alike."""
    inner = {}
    for name, step in steps.items():
        step()
        step()  # warm-up (allocator, lazy init)
        _sync(device)
        t0 = time.perf_counter()
        step()
        _sync(device)
        inner[name] = max(1, int(min_time / max(time.perf_counter() - t0, 1e-6)))
    best = dict.fromkeys(steps, float("inf"))
    for _ in range(repeats):
        for name, step in steps.items():
            _sync(device)
            t0 = time.perf_counter()
            for _ in range(inner[name]):
                step()
            _sync(device)
            best[name] = min(best[name], (time.perf_counter() - t0) / inner[name] * 1e3)
    return best


def gemm_gflops(device: torch.device, repeats: int, n: int = 2048) -> float:
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    ms = best_ms({"gemm": lambda: torch.mm(a, b)}, device, repeats, min_time=0.2)["gemm"]
    return 2 * n**3 / (ms * 1e-3) / 1e9


def loop_forward(params: dict[str, torch.Tensor], x: torch.Tensor, k: int) -> torch.Tensor:
    """Reference (a): per model, torch.topk routing, then per expert gather its tokens and run it."""
    router, w1, b1, w2, b2 = (params[n] for n in ("router.weight", "w1", "b1", "w2", "b2"))
    M, N, _ = x.shape
    T = router.shape[-1]
    outs = []
    for i in range(M):
        p = torch.softmax(x[i] @ router[i], dim=-1)
        top_p, top_e = torch.topk(p, k, dim=-1)
        if k > 1:
            top_p = top_p / top_p.sum(-1, keepdim=True)
        y = x.new_zeros(N, w2.shape[-1])
        for j in range(T):
            rows, slot = (top_e == j).nonzero(as_tuple=True)
            if rows.numel() == 0:
                continue
            h = torch.relu(x[i, rows] @ w1[i, j] + b1[i, j])
            y = y.index_add(0, rows, top_p[rows, slot, None] * (h @ w2[i, j] + b2[i, j]))
        outs.append(y)
    return torch.stack(outs)


def _one_model_dense(router, w1, b1, w2, b2, x, k: int):
    p = torch.softmax(x @ router, dim=-1)  # [N, T]
    top_p, top_e = torch.topk(p, k, dim=-1)
    if k > 1:
        top_p = top_p / top_p.sum(-1, keepdim=True)
    gates = torch.zeros_like(p).scatter(-1, top_e, top_p)
    h = torch.relu(torch.einsum("nd,tdh->nth", x, w1) + b1)
    y = torch.einsum("nth,tho->nto", h, w2) + b2
    return torch.einsum("nt,nto->no", gates, y)


def vmap_forward(params: dict[str, torch.Tensor], x: torch.Tensor, k: int) -> torch.Tensor:
    """Reference (b): torch.func.vmap of a one-model dense top-k function over stacked weights."""
    f = vmap(lambda r, a, b, c, d, xx: _one_model_dense(r, a, b, c, d, xx, k))
    return f(params["router.weight"], params["w1"], params["b1"], params["w2"], params["b2"], x)


def make_step(forward: Callable[[torch.Tensor], torch.Tensor], params, x, target) -> Callable[[], None]:
    def step() -> None:
        for p in params:
            p.grad = None
        y = forward(x)
        ((y - target) ** 2).mean(dim=(1, 2)).sum().backward()

    return step


def run(device: torch.device, repeats: int, shapes) -> str:
    peak = gemm_gflops(device, repeats)
    rows = [
        f"device: {device.type} ({torch.get_num_threads()} threads), torch {torch.__version__}; "
        f"fp32 2048x2048 GEMM: {peak:.1f} GFLOP/s",
        "",
        "| M | N | T | k | d_in | d_hidden | impl | ms/step | loop/ours | vmap/ours | GFLOP/s (active) | "
        "% of GEMM |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for M, N, T, k, d_in, d_hidden in shapes:
        moe = TopKMoE(M, T, d_in, d_hidden, D_OUT, k=k, device=device, seed=0)
        gen = torch.Generator(device="cpu").manual_seed(1)
        x = torch.randn(M, N, d_in, generator=gen).to(device)
        target = torch.randn(M, N, D_OUT, generator=gen).to(device)
        params = list(moe.parameters())
        named = dict(moe.named_parameters())
        flops = 3 * 2 * M * N * k * (d_in * d_hidden + d_hidden * D_OUT)
        loop = functools.partial(loop_forward, named, k=k)
        vmapped = functools.partial(vmap_forward, named, k=k)
        with torch.no_grad():  # the references compute the same function as the layer
            y = moe(x)
            for ref in (loop, vmapped):
                torch.testing.assert_close(ref(x), y, atol=1e-4, rtol=1e-4)
        steps = {"loop": make_step(loop, params, x, target), "vmap": make_step(vmapped, params, x, target)}
        for impl in ("dense", "sparse", "auto"):
            impl_moe = TopKMoE(M, T, d_in, d_hidden, D_OUT, k=k, impl=impl, device=device, seed=0)
            steps[impl] = make_step(impl_moe, list(impl_moe.parameters()), x, target)
        ms = best_ms(steps, device, repeats)
        auto_label = f"auto ({moe.resolved_impl(N)})"
        for impl in ("dense", "sparse", "auto", "loop", "vmap"):
            label = auto_label if impl == "auto" else impl
            gf = flops / (ms[impl] * 1e-3) / 1e9
            rows.append(
                f"| {M} | {N} | {T} | {k} | {d_in} | {d_hidden} | {label} | {ms[impl]:.2f} | "
                f"{ms['loop'] / ms[impl]:.1f} | {ms['vmap'] / ms[impl]:.2f} | {gf:.1f} | "
                f"{100 * gf / peak:.0f}% |"
            )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per case (best is kept)")
    parser.add_argument("--shapes", choices=("full", "quick"), default="full", help="quick: one tiny shape")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda requested but torch.cuda.is_available() is False")
    torch.manual_seed(0)
    print(run(device, args.repeats, QUICK_SHAPES if args.shapes == "quick" else FULL_SHAPES))


if __name__ == "__main__":
    main()
