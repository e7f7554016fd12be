#!/usr/bin/python3
"""Compact PyTorch Mamba-2 language model for the Quamba.cpp Mamba-2 reference model.

Plain PyTorch autograd (no mamba_ssm, no Triton, no hand-written backward). Math follows
mamba_ssm's `Mamba2` module (see /work/shared/docs/quamba2-spec.md sections 1.5, 1.6 and 7);
parameter names follow Hugging Face `Mamba2ForCausalLM` (spec section 1.3):

  backbone.embeddings.weight                [V, d_model]
  backbone.layers.{i}.norm.weight           [d_model]
  backbone.layers.{i}.mixer.in_proj.weight  [2*d_inner + 2*G*N + H, d_model]   rows z | x | B | C | dt
  backbone.layers.{i}.mixer.conv1d.weight   [conv_dim, 1, d_conv]  conv1d.bias [conv_dim]  (x | B | C)
  backbone.layers.{i}.mixer.dt_bias         [H]
  backbone.layers.{i}.mixer.A_log           [H]
  backbone.layers.{i}.mixer.D               [H]
  backbone.layers.{i}.mixer.norm.weight     [d_inner]      (gated RMSNorm, grouped as mamba_ssm)
  backbone.layers.{i}.mixer.out_proj.weight [d_model, d_inner]
  backbone.norm_f.weight                    [d_model]
  lm_head tied to backbone.embeddings.weight (not stored)

Gated norm: mamba_ssm semantics, norm_before_gate=False: v = y * SiLU(z), then each of the
G groups of d_inner/G contiguous channels is RMS-normalised on its own (eps 1e-5), times the
weight. (HF transformers normalises over all of d_inner when G > 1: a different function.)

SSD: the chunked "state space dual" form (chunk Q, default 64) with an explicit initial state,
written from the formulas of spec section 1.6: intra-chunk term through the masked segment-sum
decay matrix (exp of -inf above the diagonal, so no inf*0 in backward), chunk states, a short
loop over chunks for the inter-chunk state passing, the off-diagonal term from the carried
state, D*x outside. Head h uses B/C of group h // (H/G).

Activations are batch-major inside the mixer ([B, L, C]); `Mamba2LM.forward` returns
time-major logits [L, B, V] like `mamba_model.MambaLM`, so the training/eval code is shared.
"""
import os
# OpenMP threads must not busy-wait: on a shared 2-core machine spinning at barriers made
# steps 10-20x slower. libgomp reads this when torch is imported, so it is set first.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import math
from dataclasses import dataclass, asdict

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class Mamba2Args:
    d_model: int = 256
    n_layer: int = 6
    vocab_size: int = 4096
    d_state: int = 64
    d_conv: int = 4
    expand: int = 2
    headdim: int = 32
    ngroups: int = 2
    chunk_size: int = 64
    norm_eps: float = 1e-5
    dt_min: float = 1e-3
    dt_max: float = 1e-1
    dt_init_floor: float = 1e-4
    A_init_min: float = 1.0
    A_init_max: float = 16.0
    arch: str = "mamba2"

    def __post_init__(self):
        assert self.d_inner % self.headdim == 0, "d_inner must be a multiple of headdim"
        assert self.nheads % self.ngroups == 0, "nheads must be a multiple of ngroups"

    @property
    def d_inner(self):
        return self.expand * self.d_model

    @property
    def nheads(self):
        return self.d_inner // self.headdim

    @property
    def conv_dim(self):
        return self.d_inner + 2 * self.ngroups * self.d_state

    @property
    def d_in_proj(self):
        return 2 * self.d_inner + 2 * self.ngroups * self.d_state + self.nheads

    def to_dict(self):
        return asdict(self)


# --------------------------------------------------------------------------- SSD

def segsum(a):
    """a [..., T] -> [..., T, T] with out[l, s] = a[s+1] + ... + a[l] for s <= l, -inf for s > l.

    Formed as a masked cumulative sum (not as cum[l] - cum[s]) so that exp() of it has clean
    zeros above the diagonal and autograd sees no inf - inf."""
    T = a.shape[-1]
    x = a.unsqueeze(-1).expand(*a.shape, T)                       # x[..., l, s] = a[l]
    strict = torch.tril(torch.ones(T, T, dtype=torch.bool, device=a.device), diagonal=-1)
    x = x.masked_fill(~strict, 0.0)                                # keep a[l] only where l > s
    out = torch.cumsum(x, dim=-2)                                  # sum over s < r <= l
    lower = torch.tril(torch.ones(T, T, dtype=torch.bool, device=a.device), diagonal=0)
    return out.masked_fill(~lower, float("-inf"))


def ssd_chunked(x, dt, A, Bm, Cm, Dv, chunk, init_state=None):
    """Chunked SSD with an optional initial state (spec section 1.6).

    x [b, L, H, P], dt [b, L, H] (after softplus), A [H] (negative), Bm/Cm [b, L, G, N],
    Dv [H], init_state [b, H, P, N] or None. Returns (y [b, L, H, P], final state [b, H, P, N]).
    L need not be a multiple of `chunk`: the tail is zero-padded (dt = 0 there, so the padded
    steps neither decay nor feed the state)."""
    b, L, H, P = x.shape
    G, N = Bm.shape[2], Bm.shape[3]
    K = H // G
    Q = chunk
    nc = (L + Q - 1) // Q
    pad = nc * Q - L
    if pad:
        x = F.pad(x, (0, 0, 0, 0, 0, pad))
        dt = F.pad(dt, (0, 0, 0, pad))
        Bm = F.pad(Bm, (0, 0, 0, 0, 0, pad))
        Cm = F.pad(Cm, (0, 0, 0, 0, 0, pad))
    xs = x.view(b, nc, Q, G, K, P).permute(0, 3, 4, 1, 2, 5)      # [b,G,K,c,q,P]
    dts = dt.view(b, nc, Q, G, K).permute(0, 3, 4, 1, 2)           # [b,G,K,c,q]
    Bs = Bm.view(b, nc, Q, G, N).permute(0, 3, 1, 2, 4)            # [b,G,c,q,N]
    Cs = Cm.view(b, nc, Q, G, N).permute(0, 3, 1, 2, 4)            # [b,G,c,q,N]
    a = dts * A.view(G, K, 1, 1)                                   # [b,G,K,c,q]  = dt*A
    cum = torch.cumsum(a, dim=-1)                                  # inclusive prefix sum
    xdt = xs * dts.unsqueeze(-1)                                   # x*dt  [b,G,K,c,q,P]
    # 1. intra-chunk (diagonal blocks): Y[l] = sum_{s<=l} (C_l.B_s) exp(cum_l - cum_s) dt_s x_s
    CB = torch.matmul(Cs, Bs.transpose(-1, -2))                    # [b,G,c,l,s]
    M = CB.unsqueeze(2) * torch.exp(segsum(a))                     # [b,G,K,c,l,s]
    y = torch.matmul(M, xdt)                                       # [b,G,K,c,l,P]
    # 2. state contributed by each chunk, at the chunk's end
    decay_s = torch.exp(cum[..., -1:] - cum)                       # [b,G,K,c,q]
    chunk_states = torch.matmul((xdt * decay_s.unsqueeze(-1)).transpose(-1, -2),
                                Bs.unsqueeze(2))                   # [b,G,K,c,P,N]
    # 3. inter-chunk recurrence: state entering each chunk
    chunk_decay = torch.exp(cum[..., -1])                          # [b,G,K,c]
    if init_state is None:
        S = x.new_zeros(b, G, K, P, N)
    else:
        S = init_state.reshape(b, G, K, P, N)
    entering = []
    for c in range(nc):
        entering.append(S)
        S = chunk_decay[..., c, None, None] * S + chunk_states[:, :, :, c]
    S_in = torch.stack(entering, dim=3)                            # [b,G,K,c,P,N]
    # 4. off-diagonal term: exp(cum_l) C_l . S_in
    y = y + torch.exp(cum).unsqueeze(-1) * torch.matmul(Cs.unsqueeze(2), S_in.transpose(-1, -2))
    y = y.permute(0, 3, 4, 1, 2, 5).reshape(b, nc * Q, H, P)[:, :L]
    y = y + x[:, :L] * Dv.view(1, 1, H, 1)
    return y, S.reshape(b, H, P, N)


def ssd_recurrent(x, dt, A, Bm, Cm, Dv, init_state=None):
    """Per-step recurrence (spec section 1.5 step 5), same signature as ssd_chunked; for tests."""
    b, L, H, P = x.shape
    G, N = Bm.shape[2], Bm.shape[3]
    K = H // G
    S = x.new_zeros(b, H, P, N) if init_state is None else init_state.clone()
    ys = []
    for t in range(L):
        Bh = Bm[:, t].repeat_interleave(K, dim=1)                  # [b,H,N]
        Ch = Cm[:, t].repeat_interleave(K, dim=1)
        S = torch.exp(dt[:, t] * A)[..., None, None] * S \
            + (dt[:, t, :, None] * x[:, t])[..., None] * Bh[:, :, None, :]
        ys.append((S * Ch[:, :, None, :]).sum(-1) + Dv[:, None] * x[:, t])
    return torch.stack(ys, 1), S


# --------------------------------------------------------------------------- modules

class RMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class GatedRMSNorm(nn.Module):
    """mamba_ssm RMSNormGated(norm_before_gate=False, group_size=d/ngroups)."""

    def __init__(self, d, ngroups, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.ngroups = ngroups
        self.eps = eps

    def forward(self, y, z):
        v = y * F.silu(z)
        shp = v.shape
        vg = v.reshape(*shp[:-1], self.ngroups, shp[-1] // self.ngroups)
        vg = vg * torch.rsqrt(vg.pow(2).mean(-1, keepdim=True) + self.eps)
        return vg.reshape(shp) * self.weight


class Mamba2Mixer(nn.Module):
    def __init__(self, a: Mamba2Args):
        super().__init__()
        self.a = a
        H = a.nheads
        self.in_proj = nn.Linear(a.d_model, a.d_in_proj, bias=False)
        self.conv1d = nn.Conv1d(a.conv_dim, a.conv_dim, a.d_conv, groups=a.conv_dim,
                                padding=a.d_conv - 1, bias=True)
        self.dt_bias = nn.Parameter(torch.zeros(H))
        self.A_log = nn.Parameter(torch.zeros(H))
        self.D = nn.Parameter(torch.ones(H))
        self.norm = GatedRMSNorm(a.d_inner, a.ngroups, 1e-5)
        self.out_proj = nn.Linear(a.d_inner, a.d_model, bias=False)
        self.capture = None  # set to a dict to record quantization-point activations

    def forward(self, u, cache=None):
        """u [b, L, d_model] (already normalised). cache: None, or a dict with "conv"
        [b, conv_dim, d_conv-1] (last inputs, oldest first) and "ssm" [b, H, P, N]; it is
        used as the starting state and updated in place (prefill continued from a state)."""
        a = self.a
        b, L, _ = u.shape
        di, G, N, H, P = a.d_inner, a.ngroups, a.d_state, a.nheads, a.headdim
        zxbcdt = self.in_proj(u)
        z = zxbcdt[..., :di]
        xBC = zxbcdt[..., di:di + a.conv_dim]
        dt_raw = zxbcdt[..., di + a.conv_dim:]
        xt = xBC.transpose(1, 2)                                   # [b, conv_dim, L]
        if cache is None:
            conv = F.conv1d(xt, self.conv1d.weight, self.conv1d.bias,
                            padding=a.d_conv - 1, groups=a.conv_dim)[..., :L]
        else:
            xt = torch.cat([cache["conv"].to(xt.dtype), xt], dim=2)
            conv = F.conv1d(xt, self.conv1d.weight, self.conv1d.bias, groups=a.conv_dim)
            cache["conv"] = xt[..., -(a.d_conv - 1):].detach().clone()
        xBC_a = F.silu(conv).transpose(1, 2)                       # [b, L, conv_dim]
        x = xBC_a[..., :di]
        Bm = xBC_a[..., di:di + G * N].reshape(b, L, G, N)
        Cm = xBC_a[..., di + G * N:].reshape(b, L, G, N)
        dt = F.softplus(dt_raw + self.dt_bias, beta=1.0, threshold=20.0)   # dt_limit (0, inf): no clamp
        A = -torch.exp(self.A_log)
        y, S = ssd_chunked(x.reshape(b, L, H, P), dt, A, Bm, Cm, self.D, a.chunk_size,
                           None if cache is None else cache["ssm"])
        if cache is not None:
            cache["ssm"] = S.detach()
        y = y.reshape(b, L, di)
        out_in = self.norm(y, z)
        if self.capture is not None:
            c = self.capture
            c["in_proj_out"] = zxbcdt.detach()
            c["z"] = z.detach()
            c["dt_raw"] = dt_raw.detach()
            c["dt"] = dt.detach()
            c["x_conv"] = x.detach()
            c["B"] = Bm.detach()
            c["C"] = Cm.detach()
            c["ssd_y"] = y.detach()
            c["out_proj_in"] = out_in.detach()
            c["final_state"] = S.detach()
        return self.out_proj(out_in)


class Mamba2Block(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.norm = RMSNorm(a.d_model, a.norm_eps)
        self.mixer = Mamba2Mixer(a)


class Backbone(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.embeddings = nn.Embedding(a.vocab_size, a.d_model)
        self.layers = nn.ModuleList([Mamba2Block(a) for _ in range(a.n_layer)])
        self.norm_f = RMSNorm(a.d_model, a.norm_eps)


class Mamba2LM(nn.Module):
    def __init__(self, a: Mamba2Args, seed=None):
        super().__init__()
        self.args = a
        if seed is not None:
            torch.manual_seed(seed)
        self.backbone = Backbone(a)
        self._init_weights()

    @torch.no_grad()
    def _init_weights(self):
        """mamba_ssm initialisation (Mamba2.__init__ and _init_weights)."""
        a = self.args
        nn.init.normal_(self.backbone.embeddings.weight, std=0.02)
        for blk in self.backbone.layers:
            m = blk.mixer
            H = a.nheads
            # dt_bias = softplus^-1(dt), dt log-uniform in [dt_min, dt_max], floored
            dt = torch.exp(torch.rand(H) * (math.log(a.dt_max) - math.log(a.dt_min)) + math.log(a.dt_min))
            dt = dt.clamp(min=a.dt_init_floor)
            m.dt_bias.copy_(dt + torch.log(-torch.expm1(-dt)))
            # A = -U(1, 16) per head, stored as A_log
            m.A_log.copy_(torch.log(torch.empty(H).uniform_(a.A_init_min, a.A_init_max)))
            m.D.fill_(1.0)
            # out_proj: kaiming-uniform (the nn.Linear default) rescaled by 1/sqrt(n_layer)
            nn.init.kaiming_uniform_(m.out_proj.weight, a=math.sqrt(5))
            m.out_proj.weight /= math.sqrt(a.n_layer)

    def hidden(self, ids, caches=None):
        """ids [B, L] -> final-norm output [B, L, d_model]. caches: None or one dict per layer
        (see Mamba2Mixer.forward), updated in place."""
        h = self.backbone.embeddings(ids)
        residual = None
        for i, blk in enumerate(self.backbone.layers):
            residual = h if residual is None else residual + h
            h = blk.mixer(blk.norm(residual), None if caches is None else caches[i])
        residual = residual + h
        return self.backbone.norm_f(residual)

    def forward(self, ids, caches=None):
        """ids: [B, L] int64 -> logits [L, B, V] (time-major, as mamba_model.MambaLM)."""
        h = self.hidden(ids, caches)
        return F.linear(h.transpose(0, 1), self.backbone.embeddings.weight)

    def new_caches(self, batch, dtype=torch.float32):
        a = self.args
        return [{"conv": torch.zeros(batch, a.conv_dim, a.d_conv - 1, dtype=dtype),
                 "ssm": torch.zeros(batch, a.nheads, a.headdim, a.d_state, dtype=dtype)}
                for _ in range(a.n_layer)]

    def loss(self, ids, targets):
        logits = self.forward(ids)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.t().reshape(-1))

    def n_params(self):
        return sum(p.numel() for p in self.parameters())


def load_checkpoint(path, map_location="cpu"):
    ck = torch.load(path, map_location=map_location)
    model = Mamba2LM(Mamba2Args(**ck["args"]))
    model.load_state_dict(ck["model"])
    return model, ck


if __name__ == "__main__":
    # self test: chunked SSD (with initial state, Q not dividing L) vs the per-step recurrence,
    # values and gradients, float64; and model prefill in pieces vs in one go.
    torch.manual_seed(0)
    b, L, H, P, G, N = 2, 37, 8, 4, 2, 3
    x = torch.randn(b, L, H, P, dtype=torch.float64, requires_grad=True)
    dt = F.softplus(torch.randn(b, L, H, dtype=torch.float64) - 1).requires_grad_()
    A = (-torch.exp(torch.rand(H, dtype=torch.float64) * math.log(16))).requires_grad_()
    Bm = torch.randn(b, L, G, N, dtype=torch.float64, requires_grad=True)
    Cm = torch.randn(b, L, G, N, dtype=torch.float64, requires_grad=True)
    Dv = torch.randn(H, dtype=torch.float64, requires_grad=True)
    S0 = torch.randn(b, H, P, N, dtype=torch.float64, requires_grad=True)
    ins = (x, dt, A, Bm, Cm, Dv)
    y1, s1 = ssd_chunked(*ins, chunk=8, init_state=S0)
    y2, s2 = ssd_recurrent(*ins, init_state=S0)
    print("fwd max err y %.3e state %.3e" % ((y1 - y2).abs().max().item(), (s1 - s2).abs().max().item()))
    assert (y1 - y2).abs().max() < 1e-10 and (s1 - s2).abs().max() < 1e-10
    gy, gs = torch.randn_like(y1), torch.randn_like(s1)
    g1 = torch.autograd.grad((y1 * gy).sum() + (s1 * gs).sum(), ins + (S0,))
    g2 = torch.autograd.grad((y2 * gy).sum() + (s2 * gs).sum(), ins + (S0,))
    for name, a1, a2 in zip("x dt A B C D S0".split(), g1, g2):
        e = (a1 - a2).abs().max().item()
        print("grad %-3s max err %.3e" % (name, e))
        assert torch.isfinite(a1).all() and e < 1e-9, name
    a = Mamba2Args(d_model=32, n_layer=2, vocab_size=50, d_state=8, headdim=8, ngroups=2, chunk_size=8)
    m = Mamba2LM(a, seed=1).double()
    ids = torch.randint(0, 50, (2, 29))
    full = m(ids)
    caches = m.new_caches(2, torch.float64)
    part = torch.cat([m(ids[:, :11], caches), m(ids[:, 11:], caches)], 0)
    print("model prefill in two pieces vs one: max err %.3e" % (full - part).abs().max().item())
    assert (full - part).abs().max() < 1e-10
    print("mamba2 SSD OK")
