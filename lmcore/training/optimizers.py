"""The two optimizers a run may take, the lecture's plain SGD and Adam, written out here.

Why not torch.optim: its Optimizer's constructor imports torch._dynamo, about 2 s of every training process's
start on a 2-core machine, for a compiler these runs never use. The updates are the same tensor operations in the
same order as torch.optim's SGD (no momentum) and foreach Adam, so a run steps bit for bit as it would there, and
state_dict() has torch.optim's layout: a last.pt written by either loads into the other.

The trainer calls clip_and_step: on the CPU in float32, where lmcore's C++ is built (lmcore/nn/native/
optimizer_steps.cpp), the clipping's norm is one pass over the gradients and the update one more, the clipping's
factor applied on the way (the gradients are left as backward made them); equal to torch's way to float32's rounding.
Elsewhere, and with LMCORE_NATIVE=0, torch's clip_grad_norm_ and step(), bit for bit.
"""
from __future__ import annotations

import math

import torch

from lmcore.nn import native

ADAM_BETAS = (0.9, 0.999)  # Kingma & Ba's defaults, as torch.optim.Adam's
ADAM_EPS = 1e-8


class Optimizer:
    """One parameter group, in torch.optim's shape (param_groups[0]["lr"] is the learning rate the trainer decays)."""

    def __init__(self, params, lr: float, **hyper):
        self.params = list(params)
        if not self.params:
            raise ValueError("an optimizer needs at least one parameter")
        self.param_groups = [{"lr": float(lr), **hyper, "params": list(range(len(self.params)))}]
        self.state: dict[int, dict[str, torch.Tensor]] = {}
        self._cpp = None  # optimizer_steps.cpp's ops, asked at the first step: built() looks at the disk
        self._cpp_asked = False

    def clip_and_step(self, max_norm: float) -> None:
        """Scale the gradients so that their joint L2 norm is at most max_norm (0: no clipping), as
        torch.nn.utils.clip_grad_norm_ does, then step."""
        live, params, grads = self._with_grads()
        ops = self._native_ops(params, grads)
        if ops is None:
            if max_norm > 0 and params:
                torch.nn.utils.clip_grad_norm_(params, max_norm)
            self.step()
            return
        scale = clip_factor(math.sqrt(ops.sum_squares(grads)), max_norm) if max_norm > 0 else 1.0
        self._native_step(ops, live, params, grads, scale)

    def _native_ops(self, params: list[torch.Tensor], grads: list[torch.Tensor]):
        """optimizer_steps.cpp's ops where they apply to these tensors (float32, contiguous, on the CPU), else None."""
        if not self._cpp_asked:
            self._cpp, self._cpp_asked = native.optimizer_steps() if native.built() else None, True
        if self._cpp is None or not params or not all(
                t.device.type == "cpu" and t.dtype == torch.float32 and t.layout == torch.strided and t.is_contiguous()
                for t in (*params, *grads)):
            return None
        return self._cpp

    def _native_step(self, ops, live: list[int], params: list[torch.Tensor], grads: list[torch.Tensor],
                     scale: float) -> None:
        raise NotImplementedError

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    def state_dict(self) -> dict:
        return {"state": {i: dict(s) for i, s in self.state.items()},
                "param_groups": [dict(g, params=list(g["params"])) for g in self.param_groups]}

    def load_state_dict(self, state_dict: dict) -> None:
        """The learning rate and per-parameter state of a state_dict() from this class or torch.optim's."""
        groups = state_dict["param_groups"]
        if len(groups) != 1 or len(groups[0]["params"]) != len(self.params):
            raise ValueError(f"the saved optimizer state has {sum(len(g['params']) for g in groups)} parameters in "
                             f"{len(groups)} groups; this model has {len(self.params)} in one")
        order = {saved: i for i, saved in enumerate(groups[0]["params"])}  # saved index -> position
        state = {}  # taken only once all of it fits
        for saved, values in state_dict["state"].items():
            p = self.params[order[saved]]
            values = {k: v for k, v in values.items() if v is not None}  # torch.optim's SGD: momentum_buffer None
            if not values:
                continue
            if not all(isinstance(v, torch.Tensor) or k == "step" and isinstance(v, (int, float))
                       for k, v in values.items()):
                raise ValueError(f"the saved state of parameter {saved} holds something other than tensors")
            # copies (the caller's tensors stay its own), contiguous as the C++ step takes them; the step count a CPU
            # scalar, as torch.optim keeps it (older versions wrote a number)
            state[order[saved]] = {k: _step_count(v) if k == "step" else
                                   v.to(p.device, p.dtype, copy=True, memory_format=torch.contiguous_format)
                                   for k, v in values.items()}
        self._check_state(state)
        self.state, self.param_groups[0]["lr"] = state, float(groups[0]["lr"])

    def _check_state(self, state: dict[int, dict[str, torch.Tensor]]) -> None:
        pass

    def _with_grads(self) -> tuple[list[int], list[torch.Tensor], list[torch.Tensor]]:
        live = [i for i, p in enumerate(self.params) if p.grad is not None]
        return live, [self.params[i] for i in live], [self.params[i].grad for i in live]


def clip_factor(norm: float, max_norm: float) -> float:
    """The factor clip_grad_norm_ scales the gradients by: max_norm / (norm + 10⁻⁶), at most 1 (NaN stays NaN, so that
    a run whose gradients are not numbers goes on to fail as it would there)."""
    factor = max_norm / (norm + 1e-6)
    return 1.0 if factor >= 1.0 else factor


def _step_count(value) -> torch.Tensor:
    step = torch.as_tensor(value, dtype=torch.float32).to("cpu", copy=True)
    if step.numel() != 1:
        raise ValueError(f"a saved step count holds {step.numel()} numbers")
    return step.reshape(())


class SGD(Optimizer):
    """θ ← θ − η ∇θ L (no momentum, no weight decay: the lecture's update)."""

    def __init__(self, params, lr: float):
        super().__init__(params, lr, momentum=0, dampening=0, weight_decay=0, nesterov=False, maximize=False)

    @torch.no_grad()
    def step(self) -> None:
        _, params, grads = self._with_grads()
        if params:
            torch._foreach_add_(params, grads, alpha=-self.param_groups[0]["lr"])

    @torch.no_grad()
    def _native_step(self, ops, live, params, grads, scale) -> None:
        ops.sgd_(params, grads, -self.param_groups[0]["lr"] * scale)


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015): m ← β₁ m + (1 − β₁) g, v ← β₂ v + (1 − β₂) g², θ ← θ − η m̂ / (√v̂ + ε), with the
    bias corrections m̂ = m / (1 − β₁ᵗ), v̂ = v / (1 − β₂ᵗ)."""

    def __init__(self, params, lr: float):
        super().__init__(params, lr, betas=ADAM_BETAS, eps=ADAM_EPS, weight_decay=0, amsgrad=False, maximize=False)

    def _check_state(self, state: dict[int, dict[str, torch.Tensor]]) -> None:
        for i, s in state.items():
            shape = self.params[i].shape
            if set(s) != {"step", "exp_avg", "exp_avg_sq"} or s["exp_avg"].shape != shape \
                    or s["exp_avg_sq"].shape != shape:
                raise ValueError(f"the saved Adam state of parameter {i} does not fit it")

    @torch.no_grad()
    def step(self) -> None:
        live, params, grads = self._with_grads()
        if not params:
            return
        m, v, t = self._count_step(live)
        (beta1, beta2), eps, lr = ADAM_BETAS, ADAM_EPS, self.param_groups[0]["lr"]
        torch._foreach_lerp_(m, grads, 1 - beta1)
        torch._foreach_mul_(v, beta2)
        torch._foreach_addcmul_(v, grads, grads, 1 - beta2)
        step_size = [(lr / (1 - beta1 ** n)) * -1 for n in t]
        denom = torch._foreach_sqrt(v)
        torch._foreach_div_(denom, [(1 - beta2 ** n) ** 0.5 for n in t])
        torch._foreach_add_(denom, eps)
        torch._foreach_addcdiv_(params, m, denom, step_size)

    @torch.no_grad()
    def _native_step(self, ops, live, params, grads, scale) -> None:
        m, v, t = self._count_step(live)
        (beta1, beta2), lr = ADAM_BETAS, self.param_groups[0]["lr"]
        ops.adam_(params, grads, m, v, [lr / (1 - beta1 ** n) for n in t], [(1 - beta2 ** n) ** 0.5 for n in t],
                  beta1, beta2, ADAM_EPS, scale)

    def _count_step(self, live: list[int]) -> tuple[list[torch.Tensor], list[torch.Tensor], list[float]]:
        """The live parameters' m and v (made at their first gradient) and their step counts t, each one up."""
        for i in live:
            if i not in self.state:
                p = self.params[i]
                self.state[i] = {"step": torch.tensor(0.0), "exp_avg": torch.zeros_like(p),
                                 "exp_avg_sq": torch.zeros_like(p)}
        states = [self.state[i] for i in live]
        steps, m, v = ([s[k] for s in states] for k in ("step", "exp_avg", "exp_avg_sq"))
        torch._foreach_add_(steps, torch.tensor(1.0), alpha=1.0)
        return m, v, [s.item() for s in steps]


BY_NAME = {"sgd": SGD, "adam": Adam}  # TrainConfig.optimizer's values


def make_optimizer(name: str, params, lr: float) -> Optimizer:
    """The optimizer a run's config names."""
    if name not in BY_NAME:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(BY_NAME)}")
    return BY_NAME[name](params, lr)
