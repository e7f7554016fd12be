#!/usr/bin/python3
"""Compact PyTorch Mamba-1 language model for the Quamba.cpp reference model.

Math and parameter names follow Hugging Face `MambaForCausalLM` (and mamba_ssm's
`Mamba` / `selective_scan_ref`), see docs/quamba-spec.md section 1.1-1.2:

  backbone.embeddings.weight                [V, d_model]
  backbone.layers.{i}.norm.weight           [d_model]
  backbone.layers.{i}.mixer.in_proj.weight  [2*d_inner, d_model]
  backbone.layers.{i}.mixer.conv1d.weight   [d_inner, 1, d_conv]   conv1d.bias [d_inner]
  backbone.layers.{i}.mixer.x_proj.weight   [dt_rank+2*d_state, d_inner]
  backbone.layers.{i}.mixer.dt_proj.weight  [d_inner, dt_rank]     dt_proj.bias [d_inner]
  backbone.layers.{i}.mixer.A_log           [d_inner, d_state]     mixer.D [d_inner]
  backbone.layers.{i}.mixer.out_proj.weight [d_model, d_inner]
  backbone.norm_f.weight                    [d_model]
  lm_head tied to backbone.embeddings.weight (not stored)

Internally activations are time-major ([L, B, C]) so that the hand-written
selective scan works on contiguous per-time-step slices.

The selective scan has a hand-written backward pass: the forward keeps only the
SSM state at chunk boundaries; the backward recomputes each chunk's states
(recomputation), runs the reverse recurrence for the state gradient, and forms
all parameter gradients with vectorized tensor ops.
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
class MambaArgs:
    d_model: int = 256
    n_layer: int = 6
    vocab_size: int = 4096
    d_state: int = 16
    d_conv: int = 4
    expand: int = 2
    dt_rank: int = 0  # 0 -> ceil(d_model / 16)
    norm_eps: float = 1e-5
    dt_min: float = 1e-3
    dt_max: float = 1e-1
    dt_init_floor: float = 1e-4

    def __post_init__(self):
        if not self.dt_rank:
            self.dt_rank = math.ceil(self.d_model / 16)

    @property
    def d_inner(self):
        return self.expand * self.d_model

    def to_dict(self):
        return asdict(self)


# --------------------------------------------------------------------------- selective scan

def _chunk_terms(u, delta, A, Bm, c0, c1):
    d = delta[c0:c1]
    # exp(delta*A) for delta*A < -60 is < 1e-26 (i.e. 0 for all purposes); clamping keeps
    # exp() off its very slow denormal-result path on x86.
    # (only for float32 training; float64 reference runs use the exact expression).
    dAexp = d.unsqueeze(-1) * A
    if dAexp.dtype == torch.float32:
        dAexp.clamp_(min=-60.0)
    dA = torch.exp(dAexp)                                       # [T,B,D,N]
    dBu = (d * u[c0:c1]).unsqueeze(-1) * Bm[c0:c1].unsqueeze(2)  # [T,B,D,N]
    return dA, dBu


class SelectiveScanFn(torch.autograd.Function):
    """y_t = C_t . h_t + D*u_t,  h_t = exp(delta_t*A) h_{t-1} + delta_t*B_t*u_t  (time-major).

    u, delta: [L,B,D]; A: [D,N]; Bm, Cm: [L,B,N]; Dv: [D]. Returns y [L,B,D].
    """

    @staticmethod
    def forward(ctx, u, delta, A, Bm, Cm, Dv, chunk):
        L, B, D = u.shape
        N = A.shape[1]
        h = u.new_zeros(B, D, N)
        y = torch.empty_like(u)
        starts = []
        for c0 in range(0, L, chunk):
            c1 = min(L, c0 + chunk)
            starts.append(h)
            dA, hs = _chunk_terms(u, delta, A, Bm, c0, c1)
            prev = h
            for t in range(c1 - c0):
                tmp = dA[t]
                tmp.mul_(prev)
                hs[t].add_(tmp)
                prev = hs[t]
            y[c0:c1] = torch.matmul(hs, Cm[c0:c1].unsqueeze(-1)).squeeze(-1)
            h = hs[c1 - c0 - 1].clone()
        y.addcmul_(u, Dv)
        ctx.chunk = chunk
        ctx.save_for_backward(u, delta, A, Bm, Cm, Dv, torch.stack(starts))
        return y

    @staticmethod
    def backward(ctx, dy):
        u, delta, A, Bm, Cm, Dv, starts = ctx.saved_tensors
        chunk = ctx.chunk
        dy = dy.contiguous()
        L, B, D = u.shape
        du = torch.empty_like(u)
        ddelta = torch.empty_like(delta)
        dB = torch.empty_like(Bm)
        dC = torch.empty_like(Cm)
        dA_param = torch.zeros_like(A)
        dDv = (dy * u).sum((0, 1))
        carry = buf = carry_buf = None
        chunks = list(range(0, L, chunk))
        for ci in reversed(range(len(chunks))):
            c0 = chunks[ci]
            c1 = min(L, c0 + chunk)
            T = c1 - c0
            dA, hs = _chunk_terms(u, delta, A, Bm, c0, c1)
            h0 = starts[ci]
            prev = h0
            if buf is None:
                buf = torch.empty_like(h0)
                carry_buf = torch.empty_like(h0)
            for t in range(T):
                torch.mul(dA[t], prev, out=buf)
                hs[t].add_(buf)
                prev = hs[t]
            dyc = dy[c0:c1]
            # dC[t,b,n] = sum_d dy[t,b,d] h[t,b,d,n]
            dC[c0:c1] = torch.matmul(dyc.unsqueeze(2), hs).squeeze(2)
            # state gradient: g_t = dy_t C_t + dA_{t+1} g_{t+1}
            G = dyc.unsqueeze(-1) * Cm[c0:c1].unsqueeze(2)           # [T,B,D,N]
            for t in reversed(range(T)):
                if carry is not None:
                    G[t].add_(carry)
                carry = torch.mul(dA[t], G[t], out=carry_buf)
            # gradient w.r.t. dBu = G ;  dBu = (delta*u) * B
            s = torch.matmul(G, Bm[c0:c1].unsqueeze(-1)).squeeze(-1)  # [T,B,D]
            du_c = delta[c0:c1] * u[c0:c1]
            dB[c0:c1] = torch.matmul(du_c.unsqueeze(2), G).squeeze(2)
            # gradient w.r.t. dA: G * h_{t-1}; dA = exp(delta*A) -> d(delta*A) = that * dA
            hprev = torch.empty_like(hs)
            hprev[0] = h0
            if T > 1:
                hprev[1:] = hs[:-1]
            hprev.mul_(G).mul_(dA)                                   # [T,B,D,N]
            dA_param += (hprev * delta[c0:c1].unsqueeze(-1)).sum((0, 1))
            dd = (hprev * A).sum(-1)                                 # sum_n g*A
            ddelta[c0:c1] = dd + s * u[c0:c1]
            du[c0:c1] = s * delta[c0:c1] + dyc * Dv
        return du, ddelta, dA_param, dB, dC, dDv, None


def selective_scan(u, delta, A, Bm, Cm, Dv, chunk=32):
    return SelectiveScanFn.apply(u, delta, A, Bm, Cm, Dv, chunk)


def selective_scan_ref(u, delta, A, Bm, Cm, Dv):
    """Slow per-step reference (plain autograd), for tests."""
    L, B, D = u.shape
    h = u.new_zeros(B, D, A.shape[1])
    ys = []
    for t in range(L):
        h = torch.exp(delta[t].unsqueeze(-1) * A) * h + (delta[t] * u[t]).unsqueeze(-1) * Bm[t].unsqueeze(1)
        ys.append((h * Cm[t].unsqueeze(1)).sum(-1))
    return torch.stack(ys) + u * Dv


# --------------------------------------------------------------------------- modules

class RMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class MambaMixer(nn.Module):
    def __init__(self, a: MambaArgs):
        super().__init__()
        self.a = a
        di, N, R = a.d_inner, a.d_state, a.dt_rank
        self.in_proj = nn.Linear(a.d_model, 2 * di, bias=False)
        self.conv1d = nn.Conv1d(di, di, a.d_conv, groups=di, padding=a.d_conv - 1, bias=True)
        self.x_proj = nn.Linear(di, R + 2 * N, bias=False)
        self.dt_proj = nn.Linear(R, di, bias=True)
        self.A_log = nn.Parameter(torch.log(torch.arange(1, N + 1, dtype=torch.float32)).repeat(di, 1).contiguous())
        self.D = nn.Parameter(torch.ones(di))
        self.out_proj = nn.Linear(di, a.d_model, bias=False)
        self.capture = None  # set to a dict to record quantization-point activations
        self.scan_chunk = 32

    def forward(self, h):  # h: [L, B, d_model] (already normalized)
        L = h.shape[0]
        di, N, R = self.a.d_inner, self.a.d_state, self.a.dt_rank
        xz = self.in_proj(h)
        x, z = xz[..., :di], xz[..., di:]
        xc = F.conv1d(x.permute(1, 2, 0), self.conv1d.weight, self.conv1d.bias,
                      padding=self.a.d_conv - 1, groups=di)[..., :L]
        x = F.silu(xc).permute(2, 0, 1).contiguous()                  # [L,B,di] SSM input
        x_dbl = self.x_proj(x)
        dt, Bm, Cm = x_dbl[..., :R], x_dbl[..., R:R + N], x_dbl[..., R + N:]
        delta = F.softplus(self.dt_proj(dt), beta=1.0, threshold=20.0)
        A = -torch.exp(self.A_log)
        y = selective_scan(x, delta.contiguous(), A, Bm.contiguous(), Cm.contiguous(), self.D, self.scan_chunk)
        y = y * F.silu(z)                                              # out_proj input
        if self.capture is not None:
            self.capture["ssm_in"] = x.detach()
            self.capture["out_proj_in"] = y.detach()
        return self.out_proj(y)


class MambaBlock(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.norm = RMSNorm(a.d_model, a.norm_eps)
        self.mixer = MambaMixer(a)


class Backbone(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.embeddings = nn.Embedding(a.vocab_size, a.d_model)
        self.layers = nn.ModuleList([MambaBlock(a) for _ in range(a.n_layer)])
        self.norm_f = RMSNorm(a.d_model, a.norm_eps)


class MambaLM(nn.Module):
    def __init__(self, a: MambaArgs, seed=None):
        super().__init__()
        self.args = a
        if seed is not None:
            torch.manual_seed(seed)
        self.backbone = Backbone(a)
        self._init_weights()

    @torch.no_grad()
    def _init_weights(self):
        a = self.args
        nn.init.normal_(self.backbone.embeddings.weight, std=0.02)
        for blk in self.backbone.layers:
            m = blk.mixer
            # dt_proj: weight U(-dt_rank^-0.5, dt_rank^-0.5); bias = softplus^-1(dt), dt log-uniform
            std = a.dt_rank ** -0.5
            nn.init.uniform_(m.dt_proj.weight, -std, std)
            dt = torch.exp(torch.rand(a.d_inner) * (math.log(a.dt_max) - math.log(a.dt_min)) + math.log(a.dt_min))
            dt = dt.clamp(min=a.dt_init_floor)
            m.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))
            # out_proj: kaiming-uniform (the nn.Linear default) rescaled by 1/sqrt(n_layer)
            nn.init.kaiming_uniform_(m.out_proj.weight, a=math.sqrt(5))
            m.out_proj.weight /= math.sqrt(a.n_layer)

    def forward(self, ids):
        """ids: [B, L] int64 -> logits [L, B, V] (time-major)."""
        h = self.backbone.embeddings(ids.t())
        residual = None
        for blk in self.backbone.layers:
            residual = h if residual is None else residual + h
            h = blk.mixer(blk.norm(residual))
        residual = residual + h
        h = self.backbone.norm_f(residual)
        return F.linear(h, self.backbone.embeddings.weight)

    def loss(self, ids, targets):
        logits = self.forward(ids)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.t().reshape(-1))

    def n_params(self):
        return sum(p.numel() for p in self.parameters())


def load_checkpoint(path, map_location="cpu"):
    ck = torch.load(path, map_location=map_location)
    model = MambaLM(MambaArgs(**ck["args"]))
    model.load_state_dict(ck["model"])
    return model, ck


if __name__ == "__main__":
    # quick self test of the hand-written scan against the per-step reference
    torch.manual_seed(0)
    L, B, D, N = 37, 2, 8, 4
    u = torch.randn(L, B, D, dtype=torch.float64, requires_grad=True)
    delta = F.softplus(torch.randn(L, B, D, dtype=torch.float64)).requires_grad_()
    A = (-torch.rand(D, N, dtype=torch.float64) * 3).requires_grad_()
    Bm = torch.randn(L, B, N, dtype=torch.float64, requires_grad=True)
    Cm = torch.randn(L, B, N, dtype=torch.float64, requires_grad=True)
    Dv = torch.randn(D, dtype=torch.float64, requires_grad=True)
    ins = (u, delta, A, Bm, Cm, Dv)
    y1 = selective_scan(*ins, chunk=8)
    y2 = selective_scan_ref(*ins)
    g = torch.randn_like(y1)
    g1 = torch.autograd.grad(y1, ins, g)
    g2 = torch.autograd.grad(y2, ins, g)
    print("fwd max err", (y1 - y2).abs().max().item())
    for name, a1, a2 in zip("u delta A B C D".split(), g1, g2):
        print("grad %-5s max err %.3e" % (name, (a1 - a2).abs().max().item()))
        assert torch.allclose(a1, a2, atol=1e-9, rtol=1e-9), name
    print("scan OK")
