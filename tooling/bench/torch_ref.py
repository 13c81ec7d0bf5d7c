"""PyTorch reference timings for @bmc/engine's benchmark (run by bench/engine.bench.mjs).

Usage: torch_ref.py THREADS; then one JSON job per stdin line, one JSON line of
median-ms timings back per job:
  {"conv": {"x": [N,H,W,C], "w": [KH,KW,Cin,Cout], "stride": s, "pad": [t,b,l,r], "clock"?: "cpu"}} -> {"fwd", "dx", "dw"}
  ("clock": "cpu" times this thread's CPU time instead of wall time: with 1 thread, other load on a
  shared machine then does not count)
  {"resnet": {"depth": 18, "batch": 2, "size": 256}} -> {"step"}
"""
import json
import sys
import time

import torch
import torch.nn.functional as F


def median_ms(fn, min_s=0.6, max_reps=30, clock=time.perf_counter):
    fn()
    times = []
    t_end = time.perf_counter() + min_s
    while len(times) < 3 or (time.perf_counter() < t_end and len(times) < max_reps):
        t0 = clock()
        fn()
        times.append((clock() - t0) * 1000)
    times.sort()
    return times[len(times) // 2]


def conv_times(c):
    n, h, w, cin = c["x"]
    kh, kw, _, cout = c["w"]
    t, b, l, r = c["pad"]
    s = c["stride"]
    clock = time.thread_time if c.get("clock") == "cpu" else time.perf_counter
    x = torch.randn(n, cin, h, w)
    wt = torch.randn(cout, cin, kh, kw)
    # Asymmetric TF padding: pad explicitly, then a padding-free conv.
    xp = F.pad(x, (l, r, t, b))
    y = F.conv2d(xp, wt, stride=s)
    dy = torch.randn_like(y)

    def fwd():
        F.conv2d(F.pad(x, (l, r, t, b)), wt, stride=s)

    def bwd(mask):
        return lambda: torch.ops.aten.convolution_backward(
            dy, xp, wt, None, [s, s], [0, 0], [1, 1], False, [0, 0], 1, mask
        )

    return {
        "fwd": median_ms(fwd, clock=clock),
        "dx": median_ms(bwd([True, False, False]), clock=clock),
        "dw": median_ms(bwd([False, True, False]), clock=clock),
    }


def resnet_step(spec):
    import torchvision

    ctor = {18: torchvision.models.resnet18, 34: torchvision.models.resnet34, 50: torchvision.models.resnet50}
    m = ctor[spec["depth"]]()
    body = torch.nn.Sequential(*list(m.children())[:-2])
    body.eval()  # inference-mode BN, as in the tfjs model (frozen BN)
    x = torch.randn(spec["batch"], 3, spec["size"], spec["size"])
    params = [p for p in body.parameters() if p.requires_grad]

    def step():
        for p in params:
            p.grad = None
        body(x).mean().backward()

    return {"step": median_ms(step, min_s=2.0, max_reps=10)}


def main():
    torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
    # Server mode: one JSON job per stdin line, one JSON result per stdout line, so the
    # benchmark can interleave PyTorch and its own measurements on a shared machine.
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads()}), flush=True)
    for line in sys.stdin:
        job = json.loads(line)
        if "conv" in job:
            out = conv_times(job["conv"])
        elif "resnet" in job:
            out = resnet_step(job["resnet"])
        else:
            out = {"error": "unknown job"}
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
