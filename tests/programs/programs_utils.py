"""Utility code: configs, containers in and out, closures, hooks, mode branches, mutation."""
from __future__ import annotations

import dataclasses
import enum
import functools
import math
from collections import namedtuple
from typing import Dict, List, NamedTuple, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import Call, program

PROGRAMS: list = []


# ----------------------------------------------------------- dataclass configs


@dataclasses.dataclass
class NormConfig:
    mean: tuple = (0.485, 0.456, 0.406)
    std: tuple = (0.229, 0.224, 0.225)
    scale: float = 1.0 / 255.0
    clip: Optional[float] = 3.0
    channels_last: bool = False


def normalize_images(images: torch.Tensor, cfg: NormConfig) -> torch.Tensor:
    x = images.float() * cfg.scale
    mean = torch.tensor(cfg.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(cfg.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    x = (x - mean) / std
    if cfg.clip is not None:
        x = x.clamp(-cfg.clip, cfg.clip)
    if cfg.channels_last:
        x = x.permute(0, 2, 3, 1)
    return x


@program(PROGRAMS, "normalize_dataclass_config_uint8",
         lambda: (torch.randint(0, 256, (2, 3, 4, 4), dtype=torch.uint8), NormConfig()))
def make_normalize():
    return normalize_images


@program(PROGRAMS, "normalize_dataclass_config_variant",
         lambda: (torch.randint(0, 256, (2, 3, 4, 4), dtype=torch.uint8), NormConfig(clip=None, channels_last=True)))
def make_normalize2():
    return normalize_images


class Standardizer(nn.Module):
    """Running statistics kept in buffers and updated in place in training mode."""

    def __init__(self, num_features: int, momentum: float = 0.1, eps: float = 1e-5):
        super().__init__()
        self.momentum = momentum
        self.eps = eps
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("count", torch.tensor(0, dtype=torch.long))

    def forward(self, x):
        if self.training:
            mean = x.mean(0)
            var = x.var(0, unbiased=False)
            with torch.no_grad():
                self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mean)
                self.running_var.mul_(1 - self.momentum).add_(self.momentum * var)
                self.count += 1
        else:
            mean, var = self.running_mean, self.running_var
        return (x - mean) / torch.sqrt(var + self.eps)


@program(PROGRAMS, "standardizer_training_buffer_update", lambda: (torch.randn(16, 4) * 3 + 1,))
def make_standardizer_train():
    return Standardizer(4).train()


@program(PROGRAMS, "standardizer_eval_branch", lambda: (torch.randn(16, 4),))
def make_standardizer_eval():
    m = Standardizer(4)
    m.running_mean.fill_(0.5)
    return m.eval()


# ------------------------------------------------------- containers in / out

Batch = namedtuple("Batch", ["inputs", "targets", "weights"])


class Prediction(NamedTuple):
    logits: torch.Tensor
    probs: torch.Tensor
    loss: Optional[torch.Tensor] = None


class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 3))

    def forward(self, batch: Batch) -> Prediction:
        logits = self.net(batch.inputs)
        loss = F.cross_entropy(logits, batch.targets, reduction="none")
        loss = (loss * batch.weights).sum() / batch.weights.sum()
        return Prediction(logits, logits.softmax(-1), loss)


@program(PROGRAMS, "namedtuple_in_namedtuple_out",
         lambda: (Batch(torch.randn(5, 6), torch.randint(0, 3, (5,)), torch.rand(5)),))
def make_namedtuple():
    return Classifier()


def multi_task_heads(features: Dict[str, torch.Tensor], heads: Dict[str, nn.Module]) -> Dict[str, torch.Tensor]:
    out = {}
    for name, feat in features.items():
        out[f"{name}_logits"] = heads[name](feat)
        out[f"{name}_norm"] = feat.norm(dim=-1)
    out["total"] = sum(v.sum() for k, v in out.items() if k.endswith("_logits"))
    return out


class MultiTask(nn.Module):
    def __init__(self):
        super().__init__()
        self.heads = nn.ModuleDict({"cls": nn.Linear(4, 3), "reg": nn.Linear(4, 1), "aux": nn.Linear(4, 2)})

    def forward(self, features: dict):
        return multi_task_heads(features, self.heads)


@program(PROGRAMS, "moduledict_dict_in_dict_out",
         lambda: ({"cls": torch.randn(2, 4), "reg": torch.randn(2, 4), "aux": torch.randn(2, 4)},))
def make_multitask():
    return MultiTask()


def collate_and_pad(seqs: List[torch.Tensor], pad_value: float = 0.0):
    lengths = torch.tensor([s.size(0) for s in seqs])
    max_len = max(s.size(0) for s in seqs)
    padded = seqs[0].new_full((len(seqs), max_len) + tuple(seqs[0].shape[1:]), pad_value)
    for i, s in enumerate(seqs):
        padded[i, : s.size(0)] = s
    mask = torch.arange(max_len)[None, :] < lengths[:, None]
    return {"padded": padded, "lengths": lengths, "mask": mask}


@program(PROGRAMS, "collate_pad_list_of_tensors",
         lambda: ([torch.randn(3, 2), torch.randn(5, 2), torch.randn(1, 2)],))
def make_collate():
    return collate_and_pad


def nested_structures(data):
    x = data["x"]
    a, b = data["pair"]
    out = {"sum": x + a, "list": [x * i for i in range(3)], "meta": {"shape": tuple(x.shape), "n": len(data["pair"])}}
    out["nested"] = {"t": (a - b, [b.relu()]), "name": data["name"].upper()}
    return out


@program(PROGRAMS, "nested_dict_list_tuple_strings",
         lambda: ({"x": torch.randn(3), "pair": (torch.randn(3), torch.randn(3)), "name": "abc"},))
def make_nested():
    return nested_structures


# --------------------------------------------------------- functions & closures


def make_mlp_fn(weights, activation="relu"):
    act = {"relu": torch.relu, "tanh": torch.tanh, "gelu": F.gelu}[activation]

    def mlp(x):
        for i, (w, b) in enumerate(weights):
            x = x @ w + b
            if i < len(weights) - 1:
                x = act(x)
        return x
    return mlp


@program(PROGRAMS, "closure_over_weight_list", lambda: (torch.randn(4, 5),))
def make_closure_mlp():
    ws = [(torch.randn(5, 8), torch.randn(8)), (torch.randn(8, 8), torch.randn(8)), (torch.randn(8, 2), torch.randn(2))]
    return make_mlp_fn(ws, "tanh")


def scaled_op(x, y, *, alpha=1.0, op=torch.add):
    return op(x, y) * alpha


@program(PROGRAMS, "functools_partial_kwonly", lambda: (torch.randn(3, 3), torch.randn(3, 3)))
def make_partial():
    fn = functools.partial(scaled_op, alpha=0.5, op=torch.mul)

    def apply(x, y):
        return fn(x, y) + fn(y, x)
    return apply


def varargs_reduce(*tensors, weights=None, **options):
    if weights is None:
        weights = [1.0] * len(tensors)
    total = sum(w * t for w, t in zip(weights, tensors))
    if options.get("normalize", False):
        total = total / sum(weights)
    if "power" in options:
        total = total ** options["power"]
    return total


@program(PROGRAMS, "varargs_kwargs_options",
         lambda: Call((torch.randn(4), torch.randn(4), torch.randn(4)),
                      {"weights": [0.2, 0.3, 0.5], "normalize": True, "power": 2}))
def make_varargs():
    return varargs_reduce


class Activation(enum.Enum):
    RELU = "relu"
    SILU = "silu"


ACTIVATIONS = {Activation.RELU: F.relu, Activation.SILU: F.silu}
EPS = 1e-6
LAYER_SCALES = [1.0, 0.5, 0.25]


class ConfigurableMLP(nn.Module):
    def __init__(self, dim=8, act: Activation = Activation.SILU):
        super().__init__()
        self.act = act
        self.layers = nn.ModuleList([nn.Linear(dim, dim) for _ in LAYER_SCALES])

    @property
    def depth(self):
        return len(self.layers)

    @staticmethod
    def _residual(x, y, scale):
        return x + scale * y

    @classmethod
    def default_scale(cls):
        return 1.0 / math.sqrt(2)

    def forward(self, x):
        act_fn = ACTIVATIONS[self.act]
        for layer, scale in zip(self.layers, LAYER_SCALES):
            x = self._residual(x, act_fn(layer(x)), scale * self.default_scale())
        return x / (x.norm(dim=-1, keepdim=True) + EPS) * self.depth


@program(PROGRAMS, "enum_globals_property_staticmethod_classmethod", lambda: (torch.randn(3, 8),))
def make_configurable():
    return ConfigurableMLP()


class BaseEncoder(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        return self.proj(x)


class GatedEncoder(BaseEncoder):
    def __init__(self, dim):
        super().__init__(dim)
        self.gate = nn.Linear(dim, dim)

    def forward(self, x):
        h = super().forward(x)
        return h * torch.sigmoid(self.gate(x))


@program(PROGRAMS, "subclass_super_forward", lambda: (torch.randn(2, 6),))
def make_super():
    return GatedEncoder(6)


class HookedModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.fc2 = nn.Linear(8, 2)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x)))


@program(PROGRAMS, "forward_hook_and_pre_hook", lambda: (torch.randn(3, 4),))
def make_hooked():
    m = HookedModel()
    m.fc1.register_forward_hook(lambda mod, inp, out: out * 2.0)
    m.fc2.register_forward_pre_hook(lambda mod, args: (args[0] + 1.0,))
    return m


# ---------------------------------------------------------------- mode branches


class DropPath(nn.Module):
    def __init__(self, drop_prob: float = 0.0):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x):
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep_prob = 1 - self.drop_prob
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)
        random_tensor = keep_prob + torch.rand(shape, dtype=x.dtype, device=x.device)
        random_tensor.floor_()
        return x.div(keep_prob) * random_tensor


class ResidualWithOptionalMask(nn.Module):
    def __init__(self, dim=8):
        super().__init__()
        self.fc = nn.Linear(dim, dim)
        self.drop_path = DropPath(0.2)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x, mask: Optional[torch.Tensor] = None, scale: Optional[float] = None):
        h = self.fc(self.norm(x))
        if mask is not None:
            h = h.masked_fill(~mask[..., None], 0.0)
        if scale is not None:
            h = h * scale
        return x + self.drop_path(h)


@program(PROGRAMS, "optional_mask_none_eval", lambda: (torch.randn(2, 5, 8),))
def make_optional_none():
    return ResidualWithOptionalMask().eval()


@program(PROGRAMS, "optional_mask_given_eval",
         lambda: Call((torch.randn(2, 5, 8),), {"mask": torch.rand(2, 5) > 0.3, "scale": 0.5}))
def make_optional_given():
    return ResidualWithOptionalMask().eval()


# -------------------------------------------------------- in-place on inputs


def ema_update_(target: List[torch.Tensor], source: List[torch.Tensor], decay: float = 0.9):
    with torch.no_grad():
        for t, s in zip(target, source):
            t.mul_(decay).add_(s, alpha=1 - decay)
    return target[0].sum()


@program(PROGRAMS, "ema_inplace_update_of_inputs",
         lambda: ([torch.randn(3, 3), torch.randn(4)], [torch.randn(3, 3), torch.randn(4)], 0.99))
def make_ema():
    return ema_update_


def inplace_ops_chain(x, buf):
    x.add_(1.0).mul_(2.0)
    buf[0] = x.sum()
    buf[1:].copy_(x[:3] * 0.5)
    y = x.clone()
    y[y > 2] = 0.0
    x.relu_()
    return y


@program(PROGRAMS, "inplace_setitem_copy_on_inputs", lambda: (torch.randn(5), torch.zeros(4)))
def make_inplace_chain():
    return inplace_ops_chain


@torch.no_grad()
def no_grad_decorated_predict(model_weight, x):
    logits = x @ model_weight.t()
    return logits.argmax(-1), logits.requires_grad


@program(PROGRAMS, "no_grad_decorator_requires_grad_param",
         lambda: (torch.randn(3, 4, requires_grad=True), torch.randn(2, 4)))
def make_no_grad_decorated():
    return no_grad_decorated_predict


class GradModel(nn.Module):
    """Training-step shaped forward: requires_grad params, returns a differentiable loss."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 3)

    def forward(self, x, y):
        logits = self.lin(x)
        loss = F.cross_entropy(logits, y)
        return loss, logits.detach()


@program(PROGRAMS, "autograd_loss_requires_grad", lambda: (torch.randn(6, 4), torch.randint(0, 3, (6,))),
         tags=("backward",))
def make_grad_model():
    return GradModel()


# ------------------------------------------------------------- shapes & dtypes


def shape_gymnastics(x):
    b, *rest = x.shape
    n = math.prod(rest)
    flat = x.reshape(b, n)
    half = flat.shape[-1] // 2
    left, right = flat[:, :half], flat[:, half:]
    y = torch.stack([left, right], dim=1).unsqueeze(-1).expand(-1, -1, -1, 2)
    info = torch.tensor([x.ndim, x.numel(), x.size(-1)], dtype=torch.float32)
    return y.contiguous().view(b, 2, -1), info * x.new_ones(()).sum(), x.dtype == torch.float32, str(x.dtype)


@program(PROGRAMS, "shape_unpack_star_size_math", lambda: (torch.randn(2, 3, 4),))
def make_shapes():
    return shape_gymnastics


def mixed_precision_cast(x, w):
    x16 = x.to(torch.bfloat16)
    y = (x16 @ w.to(x16.dtype)).float()
    ints = (y * 100).round().to(torch.int64)
    return y, ints, ints.dtype, y.is_floating_point()


@program(PROGRAMS, "dtype_casts_bf16_int64", lambda: (torch.randn(3, 4), torch.randn(4, 2)))
def make_casts():
    return mixed_precision_cast


def index_tricks(x, idx, bool_mask):
    a = x[idx]
    b = x[:, [0, 2]]
    c = x[..., None, 1:3]
    d = torch.index_select(x, 0, idx)
    e = torch.where(bool_mask, x, torch.full_like(x, -1.0))
    f = torch.gather(x, 1, idx[:, None].expand(-1, 2) % x.size(1))
    return a, b, c, d, e, f


@program(PROGRAMS, "advanced_indexing_gather", lambda: (torch.randn(4, 3), torch.tensor([3, 0, 1]), torch.rand(4, 3) > 0.5))
def make_index_tricks():
    return index_tricks


def isinstance_dispatch(inputs):
    if isinstance(inputs, torch.Tensor):
        inputs = [inputs]
    elif isinstance(inputs, dict):
        inputs = list(inputs.values())
    outs = []
    for t in inputs:
        if t.dim() == 1:
            t = t.unsqueeze(0)
        outs.append(t.sum(-1))
    return torch.cat(outs)


@program(PROGRAMS, "isinstance_dispatch_dict", lambda: ({"a": torch.randn(3), "b": torch.randn(2, 3)},))
def make_isinstance():
    return isinstance_dispatch


def sorted_keys_getattr(obj_cfg, x):
    total = x
    for key in sorted(vars(obj_cfg)):
        total = total * getattr(obj_cfg, key, 1.0)
    extra = getattr(obj_cfg, "missing", None)
    if extra is None:
        total = total + 1
    return total


class SimpleCfg:
    def __init__(self):
        self.b = 2.0
        self.a = 0.5


@program(PROGRAMS, "user_object_vars_sorted_getattr_default", lambda: (SimpleCfg(), torch.randn(3)))
def make_sorted_keys():
    return sorted_keys_getattr


def layer_loop_with_residual_weights(x, layers: nn.ModuleList, alphas: List[float]):
    hs = [x]
    for i, layer in enumerate(layers):
        h = layer(hs[-1])
        if i % 2 == 1:
            h = h + hs[-2]
        hs.append(alphas[i] * h)
    return hs[-1], len(hs)


class LoopModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([nn.Sequential(nn.Linear(6, 6), nn.Tanh()) for _ in range(4)])
        self.alphas = [1.0, 0.9, 0.8, 0.7]

    def forward(self, x):
        return layer_loop_with_residual_weights(x, self.layers, self.alphas)


@program(PROGRAMS, "python_loop_over_layers_enumerate", lambda: (torch.randn(2, 6),))
def make_loop_model():
    return LoopModel()


def stateful_counter_module():
    class Counter(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 3)
            self.calls = 0  # python attribute mutated in forward

        def forward(self, x):
            self.calls += 1
            return self.lin(x) * self.calls
    return Counter()


@program(PROGRAMS, "module_python_attr_counter_mutation", lambda: (torch.randn(2, 3),))
def make_counter():
    return stateful_counter_module()
