"""Plain functions: losses, metrics, kernels, clustering, box utilities, math."""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import Call, program

PROGRAMS: list = []


# ---------------------------------------------------------------------- losses


def label_smoothing_cross_entropy(logits, target, smoothing: float = 0.1, reduction: str = "mean"):
    n_classes = logits.size(-1)
    log_probs = F.log_softmax(logits, dim=-1)
    with torch.no_grad():
        true_dist = torch.zeros_like(log_probs)
        true_dist.fill_(smoothing / (n_classes - 1))
        true_dist.scatter_(1, target.unsqueeze(1), 1.0 - smoothing)
    loss = torch.sum(-true_dist * log_probs, dim=-1)
    if reduction == "mean":
        return loss.mean()
    elif reduction == "sum":
        return loss.sum()
    return loss


@program(PROGRAMS, "label_smoothing_ce_by_hand", lambda: (torch.randn(8, 5), torch.randint(0, 5, (8,))))
def make_ls_ce():
    return label_smoothing_cross_entropy


@program(PROGRAMS, "label_smoothing_ce_kwargs_none_reduction",
         lambda: Call((torch.randn(6, 4), torch.randint(0, 4, (6,))), {"smoothing": 0.2, "reduction": "none"}))
def make_ls_ce_kw():
    return label_smoothing_cross_entropy


class FocalLoss(nn.Module):
    def __init__(self, alpha: float = 0.25, gamma: float = 2.0, reduction: str = "mean"):
        super().__init__()
        self.alpha = alpha
        self.gamma = gamma
        self.reduction = reduction

    def forward(self, inputs, targets):
        p = torch.sigmoid(inputs)
        ce_loss = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
        p_t = p * targets + (1 - p) * (1 - targets)
        loss = ce_loss * ((1 - p_t) ** self.gamma)
        if self.alpha >= 0:
            alpha_t = self.alpha * targets + (1 - self.alpha) * (1 - targets)
            loss = alpha_t * loss
        if self.reduction == "mean":
            loss = loss.mean()
        elif self.reduction == "sum":
            loss = loss.sum()
        return loss


@program(PROGRAMS, "sigmoid_focal_loss", lambda: (torch.randn(4, 10), (torch.rand(4, 10) > 0.7).float()))
def make_focal():
    return FocalLoss()


def dice_loss(pred: torch.Tensor, target: torch.Tensor, smooth: float = 1.0, eps: float = 1e-7):
    pred = pred.softmax(dim=1)
    target_1h = F.one_hot(target, num_classes=pred.shape[1]).permute(0, 3, 1, 2).float()
    dims = (0,) + tuple(range(2, target_1h.ndimension()))
    intersection = torch.sum(pred * target_1h, dims)
    cardinality = torch.sum(pred + target_1h, dims)
    dice = (2.0 * intersection + smooth) / (cardinality + smooth).clamp_min(eps)
    return (1 - dice).mean()


@program(PROGRAMS, "dice_loss_one_hot", lambda: (torch.randn(2, 3, 8, 8), torch.randint(0, 3, (2, 8, 8))))
def make_dice():
    return dice_loss


def info_nce(z1, z2, temperature=0.1):
    z1 = F.normalize(z1, dim=1)
    z2 = F.normalize(z2, dim=1)
    batch_size = z1.shape[0]
    z = torch.cat([z1, z2], dim=0)
    sim = z @ z.T / temperature
    sim.fill_diagonal_(-1e9)
    targets = torch.cat([torch.arange(batch_size, 2 * batch_size), torch.arange(0, batch_size)])
    loss = F.cross_entropy(sim, targets)
    acc = (sim.argmax(dim=1) == targets).float().mean()
    return loss, acc


@program(PROGRAMS, "info_nce_contrastive", lambda: (torch.randn(6, 16), torch.randn(6, 16)))
def make_info_nce():
    return info_nce


def kl_div_vae_loss(recon_x, x, mu, logvar, beta=1.0):
    bce = F.binary_cross_entropy(recon_x, x.view(-1, 64), reduction="sum")
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return bce + beta * kld, {"bce": bce, "kld": kld}


@program(PROGRAMS, "vae_loss_tuple_dict_out",
         lambda: (torch.rand(4, 64), torch.rand(4, 8, 8), torch.randn(4, 3), torch.randn(4, 3)))
def make_vae_loss():
    return kl_div_vae_loss


def huber_and_smooth_l1(pred, target, delta=1.0):
    diff = torch.abs(pred - target)
    huber = torch.where(diff < delta, 0.5 * diff ** 2, delta * (diff - 0.5 * delta))
    return huber.mean(), F.smooth_l1_loss(pred, target, beta=delta), F.huber_loss(pred, target, delta=delta)


@program(PROGRAMS, "huber_where_vs_builtin", lambda: (torch.randn(5, 3) * 2, torch.randn(5, 3)))
def make_huber():
    return huber_and_smooth_l1


# ---------------------------------------------------------- kernels, clusters


def gaussian_kernel(x, y, sigma=1.0):
    d2 = torch.cdist(x, y, p=2.0) ** 2
    return torch.exp(-d2 / (2 * sigma ** 2))


def mmd(x, y, sigmas=(0.5, 1.0, 2.0)):
    total = 0.0
    for s in sigmas:
        total = total + gaussian_kernel(x, x, s).mean() + gaussian_kernel(y, y, s).mean() \
            - 2 * gaussian_kernel(x, y, s).mean()
    return total


@program(PROGRAMS, "mmd_gaussian_kernel_cdist", lambda: (torch.randn(8, 4), torch.randn(10, 4) + 0.5))
def make_mmd():
    return mmd


def pairwise_sq_dists(x):
    sq = (x * x).sum(dim=1, keepdim=True)
    d = sq - 2 * x @ x.t() + sq.t()
    return d.clamp_min_(0.0)


@program(PROGRAMS, "pairwise_dist_by_hand_inplace_clamp", lambda: (torch.randn(7, 3),))
def make_pairwise():
    return pairwise_sq_dists


def kmeans_step(x: torch.Tensor, centroids: torch.Tensor):
    k = centroids.shape[0]
    dists = torch.cdist(x, centroids)
    assign = dists.argmin(dim=1)
    onehot = F.one_hot(assign, k).to(x.dtype)  # (N, K)
    counts = onehot.sum(0)
    sums = onehot.t() @ x
    new_centroids = torch.where(counts[:, None] > 0, sums / counts.clamp(min=1)[:, None], centroids)
    inertia = dists.gather(1, assign[:, None]).pow(2).sum()
    return new_centroids, assign, inertia


@program(PROGRAMS, "kmeans_step_argmin_onehot", lambda: (torch.randn(20, 2), torch.randn(3, 2)))
def make_kmeans():
    return kmeans_step


def kmeans_iters(x, centroids, n_iter: int = 3):
    for _ in range(n_iter):
        centroids, assign, _ = kmeans_step(x, centroids)
    return centroids, assign


@program(PROGRAMS, "kmeans_three_iterations_loop", lambda: (torch.randn(16, 2), torch.randn(4, 2), 3))
def make_kmeans_iters():
    return kmeans_iters


def cosine_similarity_matrix(a, b, eps=1e-8):
    a_n, b_n = a.norm(dim=1)[:, None], b.norm(dim=1)[:, None]
    a_norm = a / torch.max(a_n, eps * torch.ones_like(a_n))
    b_norm = b / torch.max(b_n, eps * torch.ones_like(b_n))
    sim = torch.mm(a_norm, b_norm.transpose(0, 1))
    return sim, F.cosine_similarity(a[:, None, :], b[None, :, :], dim=-1)


@program(PROGRAMS, "cosine_similarity_matrix", lambda: (torch.randn(4, 6), torch.randn(5, 6)))
def make_cos():
    return cosine_similarity_matrix


# ------------------------------------------------------------------- boxes


def box_area(boxes):
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def box_iou(boxes1, boxes2):
    area1 = box_area(boxes1)
    area2 = box_area(boxes2)
    lt = torch.max(boxes1[:, None, :2], boxes2[:, :2])  # [N,M,2]
    rb = torch.min(boxes1[:, None, 2:], boxes2[:, 2:])  # [N,M,2]
    wh = (rb - lt).clamp(min=0)
    inter = wh[:, :, 0] * wh[:, :, 1]
    union = area1[:, None] + area2 - inter
    return inter / union


def generalized_box_iou(boxes1, boxes2):
    iou = box_iou(boxes1, boxes2)
    lt = torch.min(boxes1[:, None, :2], boxes2[:, :2])
    rb = torch.max(boxes1[:, None, 2:], boxes2[:, 2:])
    wh = (rb - lt).clamp(min=0)
    area = wh[:, :, 0] * wh[:, :, 1]
    union = box_area(boxes1)[:, None] + box_area(boxes2) - iou * 0  # keeps iou in graph
    return iou - (area - union) / area


def make_boxes(n):
    xy = torch.rand(n, 2) * 10
    wh = torch.rand(n, 2) * 5 + 0.1
    return torch.cat([xy, xy + wh], dim=1)


@program(PROGRAMS, "box_iou_giou", lambda: (make_boxes(5), make_boxes(3)))
def make_giou():
    return generalized_box_iou


def decode_boxes(rel_codes, anchors, weights=(10.0, 10.0, 5.0, 5.0), bbox_xform_clip=math.log(1000.0 / 16)):
    widths = anchors[:, 2] - anchors[:, 0]
    heights = anchors[:, 3] - anchors[:, 1]
    ctr_x = anchors[:, 0] + 0.5 * widths
    ctr_y = anchors[:, 1] + 0.5 * heights
    wx, wy, ww, wh = weights
    dx = rel_codes[:, 0::4] / wx
    dy = rel_codes[:, 1::4] / wy
    dw = rel_codes[:, 2::4] / ww
    dh = rel_codes[:, 3::4] / wh
    dw = torch.clamp(dw, max=bbox_xform_clip)
    dh = torch.clamp(dh, max=bbox_xform_clip)
    pred_ctr_x = dx * widths[:, None] + ctr_x[:, None]
    pred_ctr_y = dy * heights[:, None] + ctr_y[:, None]
    pred_w = torch.exp(dw) * widths[:, None]
    pred_h = torch.exp(dh) * heights[:, None]
    c_to_c_h = torch.tensor(0.5, dtype=pred_ctr_y.dtype, device=pred_h.device) * pred_h
    c_to_c_w = torch.tensor(0.5, dtype=pred_ctr_x.dtype, device=pred_w.device) * pred_w
    pred_boxes1 = pred_ctr_x - c_to_c_w
    pred_boxes2 = pred_ctr_y - c_to_c_h
    pred_boxes3 = pred_ctr_x + c_to_c_w
    pred_boxes4 = pred_ctr_y + c_to_c_h
    return torch.stack((pred_boxes1, pred_boxes2, pred_boxes3, pred_boxes4), dim=2).flatten(1)


@program(PROGRAMS, "torchvision_decode_boxes", lambda: (torch.randn(6, 4) * 0.1, make_boxes(6)))
def make_decode():
    return decode_boxes


# ---------------------------------------------------------------- math chains


def activation_zoo(x):
    a = F.gelu(x, approximate="tanh")
    b = F.mish(x) + F.softplus(x, beta=2.0) - F.elu(x, alpha=0.5)
    c = torch.where(x > 0, x, 0.01 * x)  # leaky relu by hand
    d = x.clamp(-1.0, 1.0).abs().sqrt() * torch.sign(x)
    e = torch.erf(x / math.sqrt(2)) * math.pi + math.e
    f = torch.nan_to_num(torch.log(x), nan=0.0, neginf=-1.0)
    return a + b + c + d + e + f


@program(PROGRAMS, "activation_chain_where_clamp_math_consts", lambda: (torch.randn(4, 8),))
def make_act_zoo():
    return activation_zoo


def stable_softmax_logsumexp(x, dim: int = -1):
    m = x.amax(dim=dim, keepdim=True)
    e = (x - m).exp()
    sm = e / e.sum(dim=dim, keepdim=True)
    lse = m.squeeze(dim) + e.sum(dim=dim).log()
    return sm, lse, torch.logsumexp(x, dim=dim)


@program(PROGRAMS, "stable_softmax_logsumexp", lambda: (torch.randn(3, 7) * 10,))
def make_lse():
    return stable_softmax_logsumexp


def gelu_erf_polynomial(x, n_terms=6):
    # erf via a Taylor series in a Python loop with math.factorial
    z = x / math.sqrt(2.0)
    erf = torch.zeros_like(x)
    for n in range(n_terms):
        erf = erf + ((-1) ** n) * z ** (2 * n + 1) / (math.factorial(n) * (2 * n + 1))
    erf = erf * 2 / math.sqrt(math.pi)
    return 0.5 * x * (1.0 + erf)


@program(PROGRAMS, "taylor_series_python_loop_math_factorial", lambda: (torch.rand(10) * 0.5,))
def make_taylor():
    return gelu_erf_polynomial


def cumulative_ops(x):
    cs = torch.cumsum(x, dim=0)
    cp = torch.cumprod(1 + 0.01 * x, dim=0)
    cm = torch.cummax(x, dim=0).values
    sorted_x, idx = torch.sort(x, dim=0, descending=True)
    ranks = torch.empty_like(idx)
    ranks.scatter_(0, idx, torch.arange(x.size(0)).unsqueeze(1).expand_as(idx).contiguous())
    return cs, cp, cm, sorted_x, ranks


@program(PROGRAMS, "cumsum_sort_ranks_scatter", lambda: (torch.randn(6, 3),))
def make_cumulative():
    return cumulative_ops


def integer_and_bool_ops(ids, vocab_size: int):
    mask = (ids >= 0) & (ids < vocab_size)
    safe = torch.where(mask, ids, torch.zeros_like(ids))
    counts = F.one_hot(safe.flatten(), vocab_size).sum(0)
    shifted = torch.remainder(safe + 3, vocab_size) // 2
    return mask.any(dim=1), mask.all(), counts, shifted.to(torch.int32), (~mask).sum()


@program(PROGRAMS, "int_bool_ops_bincount", lambda: (torch.randint(-2, 12, (4, 5)), 10))
def make_int_ops():
    return integer_and_bool_ops


def gram_matrix_style_loss(features: list, targets: list, weights=None):
    if weights is None:
        weights = [1.0] * len(features)
    loss = features[0].new_zeros(())
    for f, t, w in zip(features, targets, weights):
        b, c, h, w_ = f.size()
        fm = f.view(b, c, h * w_)
        g = torch.bmm(fm, fm.transpose(1, 2)) / (c * h * w_)
        loss = loss + w * F.mse_loss(g, t)
    return loss


@program(PROGRAMS, "gram_matrix_style_loss_lists",
         lambda: ([torch.randn(1, 4, 5, 5), torch.randn(1, 8, 3, 3)], [torch.randn(1, 4, 4), torch.randn(1, 8, 8)]))
def make_gram():
    return gram_matrix_style_loss
