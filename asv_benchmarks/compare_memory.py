"""Peak memory of one forward(+backward) against PyTorch, in separate processes.

For each cell and mode, a fresh Python process makes one warm-up call on a
tiny problem (compilation, thread start-up), builds the problem (inputs,
weights, upstream gradient), records its peak RSS, makes the call and
reports the increase of the peak: the memory the call itself needs at its
highest (the problem's own arrays are not counted). Modes:
``train`` (rnntools: ``rnn_forward`` + ``rnn_backward``; torch: forward with
autograd + backward) and ``infer`` (rnntools: ``rnn_forward(...,
return_cache=False)``; torch: forward under ``no_grad``). float32, one layer.

Run as::

    python asv_benchmarks/compare_memory.py [--shape 256x50x64x512]
"""

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys
import numpy as np
cell, mode, library, B, T, I, H = sys.argv[1:8]
B, T, I, H = int(B), int(T), int(I), int(H)


def make(B, T):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    if library == "rnntools":
        from rnntools import init_params, rnn_backward, rnn_forward
        params = init_params(cell, I, H, random_state=0)
        d_out = np.ones((B, T, H), np.float32)

        def call():
            if mode == "infer":
                rnn_forward(x, params, cell, return_cache=False)
            else:
                output, _, cache = rnn_forward(x, params, cell)
                rnn_backward(cache, d_out)
        return call
    import torch
    torch.set_num_threads(2)
    module = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[
        cell](I, H, batch_first=True)
    x_t = torch.from_numpy(x)

    def call():
        if mode == "infer":
            with torch.no_grad():
                module(x_t)
        else:
            xg = x_t.clone().requires_grad_(True)
            output, _ = module(xg)
            output.sum().backward()
    return call


make(2, 3)()
call = make(B, T)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
call()
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"increase_mib": (after - before) / 1024}))
"""


def peak_increase(cell, mode, library, shape):
    result = subprocess.run(
        [sys.executable, "-c", CHILD, cell, mode, library, *map(str, shape)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])["increase_mib"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="256x100x64x512")
    parser.add_argument("--cells", default="lstm,gru,rnn")
    args = parser.parse_args()
    shape = tuple(int(v) for v in args.shape.split("x"))
    print(f"peak RSS increase of one call, MiB, B x T x I x H = {args.shape}, float32")
    print("| cell | mode | rnntools | torch | ratio |")
    print("|:--|:--|--:|--:|--:|")
    for cell in args.cells.split(","):
        for mode in ("train", "infer"):
            ours = peak_increase(cell, mode, "rnntools", shape)
            theirs = peak_increase(cell, mode, "torch", shape)
            ratio = ours / theirs if theirs > 0 else float("nan")
            print(f"| {cell} | {mode} | {ours:.0f} | {theirs:.0f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
