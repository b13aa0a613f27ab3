#!/usr/bin/env python3
"""An independent float64 NumPy model of the tiny HCGA network, to judge the
golden tensors (shared/golden/tiny.*) and hcga's outputs against exact math.

  golden_numpy.py check                 eval/train outputs and the loss vs the golden file
  golden_numpy.py fd NAME [NAME...] [--hcga OUT.safetensors] [--step 1e-6]
        per-element central differences of the loss for parameter tensors NAME,
        compared with the golden gradients (and with an hcga forward output)

Not part of `make check` (needs NumPy); docs/model.md cites its results.
Environment: HCGA_SHARED (default ../shared next to the source tree).
"""
import json
import os
import struct
import sys

import numpy as np

SHARED = os.environ.get("HCGA_SHARED",
                        os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared"))


def load(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        head = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in head.items():
        if k == "__metadata__":
            continue
        b, e = v["data_offsets"]
        dt = {"F32": "<f4", "F64": "<f8", "I64": "<i8"}[v["dtype"]]
        a = np.frombuffer(data[b:e], dtype=dt).reshape(v["shape"])
        out[k] = a.astype(np.int64) if dt == "<i8" else a.astype(np.float64)
    return out


W = load(os.path.join(SHARED, "golden", "tiny.weights.safetensors"))
G = load(os.path.join(SHARED, "golden", "tiny.golden.safetensors"))
K, T = 4, 4.0


def conv(x, p, stride=1, pad=0, bias=False):
    w = W[p + ".weight"]
    k, c, r, s = w.shape
    n, _, h, wd = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = (h + 2 * pad - r) // stride + 1, (wd + 2 * pad - s) // stride + 1
    cols = np.empty((n, c, r, s, oh, ow))
    for i in range(r):
        for j in range(s):
            cols[:, :, i, j] = xp[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride]
    y = np.einsum("ncrspq,kcrs->nkpq", cols, w)
    return y + W[p + ".bias"][None, :, None, None] if bias else y


def bn(x, p, train):
    sh = (1, -1) + (1,) * (x.ndim - 2)
    if train:
        axes = (0,) + tuple(range(2, x.ndim))
        m, v = x.mean(axis=axes), x.var(axis=axes)
    else:
        m, v = W[p + ".running_mean"], W[p + ".running_var"]
    return (x - m.reshape(sh)) / np.sqrt(v.reshape(sh) + 1e-5) * W[p + ".weight"].reshape(sh) \
        + W[p + ".bias"].reshape(sh)


def relu(x):
    return np.maximum(x, 0)


def bilinear_ac(x, oh, ow):
    _, _, h, w = x.shape
    ys = np.arange(oh) * (h - 1) / (oh - 1) if oh > 1 else np.zeros(1)
    xs = np.arange(ow) * (w - 1) / (ow - 1) if ow > 1 else np.zeros(1)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    wy, wx = (ys - y0)[:, None], (xs - x0)[None, :]
    g = lambda yy, xx: x[:, :, yy][:, :, :, xx]
    return g(y0, x0) * (1 - wy) * (1 - wx) + g(y0, x1) * (1 - wy) * wx \
        + g(y1, x0) * wy * (1 - wx) + g(y1, x1) * wy * wx


def forward(train):
    b = lambda x, p: bn(x, p, train)

    def bottleneck(x, p):
        o = relu(b(conv(x, p + ".conv1"), p + ".bn1"))
        o = relu(b(conv(o, p + ".conv2", 1, 1), p + ".bn2"))
        o = b(conv(o, p + ".conv3"), p + ".bn3")
        r = b(conv(x, p + ".downsample.0"), p + ".downsample.1") if p + ".downsample.0.weight" in W else x
        return relu(o + r)

    def basic(x, p):
        o = relu(b(conv(x, p + ".conv1", 1, 1), p + ".bn1"))
        return relu(b(conv(o, p + ".conv2", 1, 1), p + ".bn2") + x)

    def stage(s, xs):
        p = "base.stage%d.0" % s
        xs = [basic(xs[i], p + ".branches.%d.0" % i) for i in range(len(xs))]
        out = []
        for i in range(len(xs)):
            def f(j, xj):
                q = p + ".fuse_layers.%d.%d" % (i, j)
                if j > i:
                    y = b(conv(xj, q + ".0"), q + ".1")
                    return y.repeat(2 ** (j - i), axis=2).repeat(2 ** (j - i), axis=3)
                y = xj
                for k in range(i - j):
                    y = b(conv(y, q + ".%d.0" % k, 2, 1), q + ".%d.1" % k)
                    if k < i - j - 1:
                        y = relu(y)
                return y
            y = xs[0] if i == 0 else f(0, xs[0])
            for j in range(1, len(xs)):
                y = y + (xs[j] if i == j else f(j, xs[j]))
            out.append(relu(y))
        return out

    x = G["input.images"]
    x = relu(b(conv(x, "base.conv1", 2, 1), "base.bn1"))
    x = relu(b(conv(x, "base.conv2", 2, 1), "base.bn2"))
    for i in range(4):
        x = bottleneck(x, "base.layer1.%d" % i)
    xs = [relu(b(conv(x, "base.transition1.0.0", 1, 1), "base.transition1.0.1")),
          relu(b(conv(x, "base.transition1.1.0.0", 2, 1), "base.transition1.1.0.1"))]
    xs = stage(2, xs)
    xs.append(relu(b(conv(xs[-1], "base.transition2.2.0.0", 2, 1), "base.transition2.2.0.1")))
    xs = stage(3, xs)
    xs.append(relu(b(conv(xs[-1], "base.transition3.3.0.0", 2, 1), "base.transition3.3.0.1")))
    xs = stage(4, xs)
    xs = [bottleneck(xs[i], "base.incre_modules.%d.0" % i) for i in range(4)]
    h, w = xs[0].shape[2:]
    cat = np.concatenate([xs[0]] + [bilinear_ac(xs[i], h, w) for i in range(1, 4)], 1)
    f = relu(b(conv(cat, "base.cls_head.0", bias=True), "base.cls_head.1"))
    a = relu(b(conv(f, "base.spatial_attn.conv1.conv", 2, 1, True), "base.spatial_attn.conv1.bn"))
    a = bilinear_ac(a, a.shape[2] * 2, a.shape[3] * 2)
    a = b(conv(a, "base.spatial_attn.conv2.conv", bias=True), "base.spatial_attn.conv2.bn")
    F = f / (1 + np.exp(-a))
    logits = conv(F, "base.part_cls_layer", bias=True)
    e = np.exp(logits - logits.max(1, keepdims=True))
    P = e / e.sum(1, keepdims=True)
    y_fore = (F * P[:, 1:].sum(1, keepdims=True)).mean((2, 3))
    Pm = np.where(P < 1 / T, 0, P) if train else P
    y_part = np.concatenate([(F * Pm[:, k:k + 1]).mean((2, 3)) for k in range(1, K)], 1)
    y_global = F.mean((2, 3))
    return dict(F=F, logits=logits, P=P, y_fore=y_fore, y_part=y_part, y_global=y_global)


def loss(o):
    pids, lab = G["input.pids"], G["input.parsing"]

    def ce_ls(s):
        s = s - s.max(1, keepdims=True)
        ls = s - np.log(np.exp(s).sum(1, keepdims=True))
        t = np.full(ls.shape, 0.1 / ls.shape[1])
        t[np.arange(len(pids)), pids] += 0.9
        return (-(t * ls)).sum(1).mean()

    terms = {}
    for nm in ("global", "fore", "part"):
        feat = bn(o["y_" + nm], "bottleneck_" + nm, True)
        terms["xent_" + nm] = ce_ls(feat @ W["classifier_%s.weight" % nm].T)
    lg = o["logits"]
    m = lg.max(1, keepdims=True)
    lsm = lg - m - np.log(np.exp(lg - m).sum(1, keepdims=True))
    n, h, w = lab.shape
    nll = -lsm[np.arange(n)[:, None, None], lab, np.arange(h)[None, :, None], np.arange(w)[None, None, :]]
    terms["parsing"] = nll[lab != -1].mean()
    y = o["y_global"]
    d = np.sqrt(np.maximum((y ** 2).sum(1)[:, None] + (y ** 2).sum(1)[None, :] - 2 * y @ y.T, 1e-12))
    same = pids[:, None] == pids[None, :]
    ap = np.where(same, d, -np.inf).max(1)
    an = np.where(~same, d, np.inf).min(1)
    terms["triplet_global"] = np.maximum(0, ap - an + 0.3).mean()
    terms["total"] = terms["xent_global"] + terms["xent_fore"] + terms["xent_part"] \
        + 0.1 * terms["parsing"] + terms["triplet_global"]
    return terms


def rel(a, b):
    return np.linalg.norm(np.ravel(a) - np.ravel(b)) / np.linalg.norm(np.ravel(b))


def check():
    o = forward(False)
    n = o["F"].shape[0]
    print("eval.feature_map  %.2e" % rel(o["F"], G["eval.feature_map"]))
    print("eval.feat_fore    %.2e" % rel(bn(o["y_fore"], "bottleneck_fore", False), G["eval.feat_fore"]))
    fp = bn(o["y_part"], "bottleneck_part", False).reshape(n, K - 1, -1)
    print("eval.feat_part    %.2e (BNNeck'ed y_part)" % rel(fp, G["eval.feat_part"]))
    am = o["P"].argmax(1)
    vis = np.array([[int((am[i] == k).any()) for k in range(1, K)] for i in range(n)])
    print("eval.visible_part %s" % ("equal" if (vis == G["eval.visible_part"]).all() else "DIFFERENT"))
    o = forward(True)
    for k in ("y_part", "y_global", "y_fore"):
        print("train.%-12s %.2e" % (k, rel(o[k], G["train." + k])))
    print("train.part_pd_score %.2e" % rel(o["logits"], G["train.part_pd_score"]))
    for k, v in loss(o).items():
        print("loss.%-14s %.2e" % (k, abs(v - G["loss." + k][0]) / abs(G["loss." + k][0])))


def fd(names, hcga_out, step):
    H = load(hcga_out) if hcga_out else None
    for name in names:
        w0 = W[name].copy()
        g = np.zeros(w0.size)
        for i in range(w0.size):
            e = step * max(1.0, abs(w0.flat[i]))
            W[name] = w0.copy()
            W[name].flat[i] += e
            lp = loss(forward(True))["total"]
            W[name] = w0.copy()
            W[name].flat[i] -= e
            lm = loss(forward(True))["total"]
            g[i] = (lp - lm) / (2 * e)
        W[name] = w0
        line = "%-48s golden vs central differences %.2e" % (name, rel(G["grad." + name], g))
        if H is not None:
            line += ", hcga %.2e" % rel(H["grad." + name], g)
        print(line, flush=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    if not args or args[0] not in ("check", "fd"):
        print(__doc__)
        sys.exit(2)
    if args[0] == "check":
        check()
    else:
        out, step, names = None, 1e-6, []
        it = iter(args[1:])
        for a in it:
            if a == "--hcga":
                out = next(it)
            elif a == "--step":
                step = float(next(it))
            else:
                names.append(a)
        fd(names, out, step)
