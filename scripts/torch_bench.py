#!/usr/bin/env python3
"""torch_bench.py - PyTorch baseline for `hcga bench`: an HRNet-W32-shaped
HCGA training step (forward, the five loss terms, backward, Adam) and an eval
forward, on random inputs, timed on one GPU.

The network is written from the project's model description
(/work/shared/HCGA.md, section 2) so that it has the same layers, widths and
op sequence as hcga's graph; it is a timing baseline, not a checkpoint-
compatible reimplementation (parameter names differ).

usage: python3 scripts/torch_bench.py [--batch 64] [--mode train|eval|both]
           [--iters 20] [--warmup 5] [--width 32] [--classes 702]
           [--height 256 --img-width 128] [--tf32] [--no-cudnn-benchmark]
           [--amp bf16|fp16] [--channels-last] [--compile]
           [--device cuda|cpu] [--threads N] [--json FILE]

Prints one line per mode: images/s, ms per step, peak GPU memory.
--device cpu times the same step on the CPU (PyTorch's CPU convolutions run
on oneDNN) with --threads N intra-op threads (torch.set_num_threads; default
PyTorch's own); peak memory is then the process's max RSS.
Defaults: FP32 with TF32 disabled (like hcga's default), cudnn.benchmark on.
--amp: torch.autocast to bfloat16 / float16 (FP32 master weights; fp16 with
GradScaler), PyTorch's standard mixed precision.  --channels-last: model and
input in torch.channels_last (NHWC), the layout tensor cores prefer.
--compile: torch.compile(model); if compiling fails the run continues eager
and says so ("compiled": false in the JSON, with the reason).
"""
import argparse
import json
import sys
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as e:  # reported by gpu-check.sh as "missing"
    print("torch_bench.py: PyTorch is not importable: %s" % e, file=sys.stderr)
    sys.exit(3)

BN_MOMENTUM = 0.1


def conv3x3(cin, cout, stride=1, bias=False):
    return nn.Conv2d(cin, cout, 3, stride, 1, bias=bias)


def bn(c):
    return nn.BatchNorm2d(c, eps=1e-5, momentum=BN_MOMENTUM)


class Basic(nn.Module):
    """3x3 BN ReLU 3x3 BN, + identity, ReLU."""
    expansion = 1

    def __init__(self, cin, planes, stride=1, down=None):
        super().__init__()
        self.c1, self.b1 = conv3x3(cin, planes, stride), bn(planes)
        self.c2, self.b2 = conv3x3(planes, planes), bn(planes)
        self.down = down

    def forward(self, x):
        r = x if self.down is None else self.down(x)
        y = F.relu(self.b1(self.c1(x)))
        y = self.b2(self.c2(y))
        return F.relu(y + r)


class Bottle(nn.Module):
    """1x1 -> 3x3 -> 1x1 (expansion 4), projection shortcut when given."""
    expansion = 4

    def __init__(self, cin, planes, stride=1, down=None):
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(cin, planes, 1, bias=False), bn(planes)
        self.c2, self.b2 = conv3x3(planes, planes, stride), bn(planes)
        self.c3, self.b3 = nn.Conv2d(planes, planes * 4, 1, bias=False), bn(planes * 4)
        self.down = down

    def forward(self, x):
        r = x if self.down is None else self.down(x)
        y = F.relu(self.b1(self.c1(x)))
        y = F.relu(self.b2(self.c2(y)))
        y = self.b3(self.c3(y))
        return F.relu(y + r)


def projection(cin, cout, stride=1):
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), bn(cout))


def blocks(block, cin, planes, n):
    down = projection(cin, planes * block.expansion) if cin != planes * block.expansion else None
    layers = [block(cin, planes, 1, down)]
    layers += [block(planes * block.expansion, planes) for _ in range(n - 1)]
    return nn.Sequential(*layers)


class Module(nn.Module):
    """One high-resolution module: per-branch BasicBlocks, then fusion."""

    def __init__(self, widths, nblocks):
        super().__init__()
        nb = len(widths)
        self.branches = nn.ModuleList([blocks(Basic, w, w, nblocks) for w in widths])
        self.fuse = nn.ModuleList()
        for i in range(nb):
            row = nn.ModuleList()
            for j in range(nb):
                if j > i:  # 1x1 conv + BN, then nearest upsampling by 2^(j-i)
                    row.append(nn.Sequential(nn.Conv2d(widths[j], widths[i], 1, bias=False), bn(widths[i])))
                elif j == i:
                    row.append(nn.Identity())
                else:  # (i-j) stride-2 3x3 convs, ReLU between them
                    steps = []
                    for k in range(i - j):
                        last = k == i - j - 1
                        cout = widths[i] if last else widths[j]
                        steps += [conv3x3(widths[j], cout, 2), bn(cout)]
                        if not last:
                            steps.append(nn.ReLU())
                    row.append(nn.Sequential(*steps))
            self.fuse.append(row)

    def forward(self, xs):
        xs = [b(x) for b, x in zip(self.branches, xs)]
        out = []
        for i, row in enumerate(self.fuse):
            acc = None
            for j, f in enumerate(row):
                y = f(xs[j])
                if j > i:
                    y = F.interpolate(y, scale_factor=2 ** (j - i), mode="nearest")
                acc = y if acc is None else acc + y
            out.append(F.relu(acc))
        return out


class Transition(nn.Module):
    """To an existing branch whose width changes: 3x3 s1; to a new branch:
    3x3 s2 from the last branch; both + BN + ReLU."""

    def __init__(self, cin, cout):
        super().__init__()
        self.layers = nn.ModuleList()
        for i, w in enumerate(cout):
            if i < len(cin):
                self.layers.append(nn.Identity() if cin[i] == w else nn.Sequential(conv3x3(cin[i], w), bn(w), nn.ReLU()))
            else:
                self.layers.append(nn.Sequential(conv3x3(cin[-1], w, 2), bn(w), nn.ReLU()))

    def forward(self, xs):
        out = []
        for i, layer in enumerate(self.layers):
            src = xs[i] if i < len(xs) else xs[-1]
            out.append(layer(src))
        return out


class HCGANet(nn.Module):
    def __init__(self, width=32, classes=702, parts=4, t=4.0):
        super().__init__()
        w = [width, 2 * width, 4 * width, 8 * width]
        self.parts, self.t = parts, t
        self.stem = nn.Sequential(conv3x3(3, 64, 2), bn(64), nn.ReLU(), conv3x3(64, 64, 2), bn(64), nn.ReLU())
        self.layer1 = blocks(Bottle, 64, 64, 4)
        self.tr1 = Transition([256], w[:2])
        self.stage2 = nn.Sequential(*[Module(w[:2], 4) for _ in range(1)])
        self.tr2 = Transition(w[:2], w[:3])
        self.stage3 = nn.Sequential(*[Module(w[:3], 4) for _ in range(4)])
        self.tr3 = Transition(w[:3], w[:4])
        self.stage4 = nn.Sequential(*[Module(w[:4], 4) for _ in range(3)])
        self.incre = nn.ModuleList([blocks(Bottle, w[i], p, 1) for i, p in enumerate([32, 64, 128, 256])])
        self.cls_head = nn.Sequential(nn.Conv2d(1920, 256, 1, bias=True), bn(256), nn.ReLU())
        self.att_conv1 = nn.Conv2d(256, 1, 3, 2, 1, bias=True)
        self.att_bn1 = bn(1)
        self.att_conv2 = nn.Conv2d(1, 1, 1, bias=True)
        self.att_bn2 = bn(1)
        self.part_cls = nn.Conv2d(256, parts, 1, bias=True)
        self.neck_part = nn.BatchNorm1d(256 * (parts - 1))
        self.neck_global = nn.BatchNorm1d(256)
        self.neck_fore = nn.BatchNorm1d(256)
        for neck in (self.neck_part, self.neck_global, self.neck_fore):
            neck.bias.requires_grad_(False)  # BNNeck: bias frozen
        self.fc_part = nn.Linear(256 * (parts - 1), classes, bias=False)
        self.fc_global = nn.Linear(256, classes, bias=False)
        self.fc_fore = nn.Linear(256, classes, bias=False)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in")
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.001)

    @staticmethod
    def _run(stage, xs):
        for m in stage:
            xs = m(xs)
        return xs

    def forward(self, x):
        x = self.layer1(self.stem(x))
        xs = self._run(self.stage2, self.tr1([x]))
        xs = self._run(self.stage3, self.tr2(xs))
        xs = self._run(self.stage4, self.tr3(xs))
        ys = [inc(v) for inc, v in zip(self.incre, xs)]
        h, w = ys[0].shape[2:]
        ys = [ys[0]] + [F.interpolate(v, size=(h, w), mode="bilinear", align_corners=True) for v in ys[1:]]
        f = self.cls_head(torch.cat(ys, 1))
        a = F.relu(self.att_bn1(self.att_conv1(f)))
        a = F.interpolate(a, scale_factor=2, mode="bilinear", align_corners=True)
        a = torch.sigmoid(self.att_bn2(self.att_conv2(a)))
        f = f * a  # the feature map F
        score = self.part_cls(f)
        p = torch.softmax(score, 1)
        y_global = f.mean((2, 3))
        y_fore = (f * p[:, 1:].sum(1, keepdim=True)).mean((2, 3))
        pk = p[:, 1:]
        if self.training:
            pk = pk * (pk >= 1.0 / self.t).to(pk.dtype)
        y_part = torch.cat([(f * pk[:, k:k + 1]).mean((2, 3)) for k in range(self.parts - 1)], 1)
        b_part, b_global, b_fore = self.neck_part(y_part), self.neck_global(y_global), self.neck_fore(y_fore)
        if not self.training:
            return b_fore, b_part, score, f
        return (self.fc_part(b_part), self.fc_global(b_global), self.fc_fore(b_fore),
                y_part, y_global, y_fore, score)


def triplet_batch_hard(x, labels, margin):
    sq = (x * x).sum(1, keepdim=True)
    d = (sq + sq.t() - 2.0 * x @ x.t()).clamp(min=1e-12).sqrt()
    same = labels[:, None] == labels[None, :]
    d_ap = (d * same).max(1).values  # distances >= 0, so masked entries never win
    d_an = torch.where(same, torch.full_like(d, float("inf")), d).min(1).values
    return F.relu(d_ap - d_an + margin).mean()


def hcga_loss(out, pids, parsing, eps=0.1, margin=0.3, pix_w=0.1):
    c_part, c_global, c_fore, _, y_global, _, score = out
    ce = lambda logits: F.cross_entropy(logits, pids, label_smoothing=eps)
    pix = F.cross_entropy(score, parsing, ignore_index=-1)
    return ce(c_global) + ce(c_fore) + ce(c_part) + pix_w * pix + triplet_batch_hard(y_global, pids, margin)


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def peak_mib(dev):
    if dev.type == "cuda":
        return torch.cuda.max_memory_allocated(dev) / 2 ** 20
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def device_name(dev):
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return "cpu, %d threads" % torch.get_num_threads()


def bench(args, mode):
    dev = torch.device(args.device)
    torch.manual_seed(1)
    net = HCGANet(args.width, args.classes).to(dev)
    n = args.batch
    x = torch.randn(n, 3, args.height, args.img_width, device=dev)
    if args.channels_last:
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.amp)
    scaler = torch.cuda.amp.GradScaler() if args.amp == "fp16" and mode == "train" else None
    model, compiled, compile_error = net, False, None
    if args.compile:
        try:
            model = torch.compile(net)
            compiled = True
        except Exception as e:  # e.g. no triton: measure eager and say so
            compile_error = "%s: %s" % (type(e).__name__, e)
    ids = max(1, n // 4)
    pids = (torch.arange(n, device=dev) // 4) % min(ids, args.classes)
    parsing = torch.randint(-1, 4, (n, args.height // 4, args.img_width // 4), device=dev)
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=3.5e-4,
                           betas=(0.9, 0.999), eps=1e-8, weight_decay=5e-4)

    def forward():
        if amp_dtype is None:
            return model(x)
        with torch.autocast(device_type=dev.type, dtype=amp_dtype):
            return model(x)

    def step():
        if mode == "train":
            opt.zero_grad(set_to_none=True)
            out = forward()
            with torch.autocast(device_type=dev.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                loss = hcga_loss(out, pids, parsing)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                opt.step()
        else:
            with torch.no_grad():
                forward()

    net.train(mode == "train")
    t_warm = time.perf_counter()
    for i in range(args.warmup):
        try:
            step()
        except Exception as e:  # torch.compile fails lazily, at the first call
            if not compiled or i > 0:
                raise
            compile_error = "%s: %s" % (type(e).__name__, str(e).splitlines()[0] if str(e) else "")
            model, compiled = net, False
            step()
    sync(dev)
    warm_s = time.perf_counter() - t_warm
    sync(dev)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    t0 = time.perf_counter()
    for _ in range(args.iters):
        step()
    sync(dev)
    dt = (time.perf_counter() - t0) / args.iters
    res = {
        "mode": mode, "batch": n, "width": args.width, "size": [args.height, args.img_width],
        "images_per_s": n / dt, "ms_per_step": dt * 1e3,
        "peak_mem_mib": peak_mib(dev),
        "tf32": bool(args.tf32), "cudnn_benchmark": not args.no_cudnn_benchmark,
        "amp": args.amp or "fp32", "channels_last": bool(args.channels_last),
        "compile_requested": bool(args.compile), "compiled": compiled, "compile_error": compile_error,
        "warmup_s": warm_s,
        "torch": torch.__version__, "gpu": device_name(dev),
    }
    print("torch %s W%d %dx%d batch %d: %.1f images/s (%.1f ms/step), peak %.0f MiB, precision %s, "
          "channels_last %s, %s, tf32 %s, cudnn.benchmark %s, %s, torch %s"
          % (mode, args.width, args.height, args.img_width, n, res["images_per_s"], res["ms_per_step"],
             res["peak_mem_mib"], res["amp"], "on" if args.channels_last else "off",
             "compiled" if compiled else ("eager (compile failed: %s)" % compile_error if args.compile else "eager"),
             "on" if args.tf32 else "off",
             "on" if res["cudnn_benchmark"] else "off", res["gpu"], res["torch"]))
    del net, model, opt
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--mode", choices=["train", "eval", "both"], default="both")
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--classes", type=int, default=702)
    ap.add_argument("--height", type=int, default=256)
    ap.add_argument("--img-width", type=int, default=128)
    ap.add_argument("--tf32", action="store_true", help="allow TF32 in matmul and cuDNN")
    ap.add_argument("--no-cudnn-benchmark", action="store_true")
    ap.add_argument("--amp", choices=["bf16", "fp16"], help="torch.autocast mixed precision")
    ap.add_argument("--channels-last", action="store_true", help="NHWC memory format for model and input")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model (eager if it fails)")
    ap.add_argument("--device", default="cuda", help="cuda or cpu")
    ap.add_argument("--threads", type=int, help="CPU intra-op threads (torch.set_num_threads)")
    ap.add_argument("--json", help="also write the results as JSON to this file")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
        print("torch_bench.py: torch.cuda.is_available() is False (torch %s)" % torch.__version__, file=sys.stderr)
        return 3
    torch.backends.cuda.matmul.allow_tf32 = bool(args.tf32)
    torch.backends.cudnn.allow_tf32 = bool(args.tf32)
    torch.backends.cudnn.benchmark = not args.no_cudnn_benchmark
    modes = ["train", "eval"] if args.mode == "both" else [args.mode]
    results = [bench(args, m) for m in modes]
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
