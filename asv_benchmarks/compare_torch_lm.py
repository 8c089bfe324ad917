"""RNNLanguageModel against an idiomatic PyTorch character language model.

Same architecture (embedding 32 → 1-layer LSTM, 128 hidden units → linear
over the ~40-character vocabulary), same data (lines of random words), same
optimiser (Adam, batch 32), float32, same threads, in the same process, with
samples interleaved (``benchmarks.common.interleaved_samples``). Rows:

- one training epoch: ``partial_fit`` against a padded ``nn.LSTM`` epoch with
  ``CrossEntropyLoss(ignore_index=pad)``;
- greedy generation of 200 characters for 100 prompts: ``generate`` against
  an ``nn.LSTMCell`` step loop under ``torch.no_grad()`` with the same
  weights (both forced to write all 200 characters: ``min_length=200``, eos
  masked in torch);
- beam search, width 5, against our own greedy time;
- one ``rnn_step`` at batch 1, hidden 128 (input 32 and 128), against
  ``nn.LSTMCell`` at the same shapes.

Prints the machine's fp32 GEMM peak first: ratios differ between machines.

Run as::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \
        python asv_benchmarks/compare_torch_lm.py
"""

import argparse
import os
import warnings

import numpy as np
from benchmarks.common import interleaved_samples, median_wall
from compare_torch import gemm_peak
from sklearn.exceptions import ConvergenceWarning

import rnntools
from rnntools import RNNLanguageModel
from rnntools.functional import prepare_step, rnn_step
from rnntools.vocabulary import Vocabulary

WORDS = (
    "the of and to in is was that for on with as by at from his her they "
    "this which an be or had not are but were one all their there been has "
    "when who will more no if out so said what up its about into than them"
).split()


def make_corpus(lines, seed):
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, rng.integers(4, 10))) for _ in range(lines)]


def torch_language_model(model):
    """``nn.Embedding`` + ``nn.LSTM`` + ``nn.Linear`` with ``model``'s weights."""
    import torch

    params = {k: torch.from_numpy(v.copy()) for k, v in model.params_.items()}
    vocab, embed = params["embedding.weight"].shape
    net = torch.nn.ModuleDict(
        {
            "embedding": torch.nn.Embedding(vocab, embed),
            "lstm": torch.nn.LSTM(embed, model.hidden_size, batch_first=True),
            "head": torch.nn.Linear(model.hidden_size, vocab),
        }
    )
    net.load_state_dict(
        {
            (key if key.split(".")[0] in ("embedding", "head") else f"lstm.{key}"): v
            for key, value in params.items()
            for v in [value]
        }
    )
    return net


def torch_epoch(net, optimizer, inputs, targets, batch):
    import torch

    loss_function = torch.nn.CrossEntropyLoss(ignore_index=Vocabulary.PAD)
    order = torch.randperm(len(inputs))
    for start in range(0, len(inputs), batch):
        index = order[start : start + batch]
        x, y = inputs[index], targets[index]
        optimizer.zero_grad()
        output, _ = net["lstm"](net["embedding"](x))
        logits = net["head"](output)
        loss = loss_function(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        loss.backward()
        optimizer.step()


def torch_greedy(net, first, steps):
    """Greedy ``nn.LSTMCell`` loop writing ``steps`` tokens (eos masked)."""
    import torch

    lstm = net["lstm"]
    cell = torch.nn.LSTMCell(lstm.input_size, lstm.hidden_size)
    cell.load_state_dict(
        {
            "weight_ih": lstm.weight_ih_l0,
            "weight_hh": lstm.weight_hh_l0,
            "bias_ih": lstm.bias_ih_l0,
            "bias_hh": lstm.bias_hh_l0,
        }
    )
    forbidden = [Vocabulary.PAD, Vocabulary.BOS, Vocabulary.EOS]

    def run():
        with torch.no_grad():
            tokens = first
            h = torch.zeros(len(first), lstm.hidden_size)
            c = torch.zeros_like(h)
            written = []
            for _ in range(steps):
                h, c = cell(net["embedding"](tokens), (h, c))
                logits = net["head"](h)
                logits[:, forbidden] = -float("inf")
                tokens = torch.log_softmax(logits, dim=1).argmax(dim=1)
                written.append(tokens)
            return torch.stack(written, dim=1)

    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count()))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("RNNTOOLS_NUM_THREADS", str(args.threads))
    warnings.simplefilter("ignore", ConvergenceWarning)
    peak = gemm_peak(args.threads)
    print(
        f"rnntools {rnntools.__version__}, torch {torch.__version__}, "
        f"{args.threads} threads, load average {os.getloadavg()[0]:.2f}; "
        f"fp32 GEMM peak: numpy {peak['numpy']:.0f}, torch {peak['torch']:.0f} GFLOP/s"
    )

    train = make_corpus(2000, seed=0)
    model = RNNLanguageModel(
        hidden_size=128, embedding_dim=32, batch_size=32, random_state=0
    )
    model.partial_fit(train)  # compiles; builds the vocabulary
    net = torch_language_model(model)
    optimizer = torch.optim.Adam(net.parameters(), lr=model.learning_rate_init)
    inputs, targets, _ = model._encode_targets(train, model.vocabulary_)
    inputs_t, targets_t = torch.from_numpy(inputs), torch.from_numpy(targets)
    rows = []
    samples = interleaved_samples(
        {
            "rnntools": lambda: model.partial_fit(train),
            "torch": lambda: torch_epoch(net, optimizer, inputs_t, targets_t, 32),
        },
        repeats=args.repeats,
    )
    ours, theirs = median_wall(samples["rnntools"]), median_wall(samples["torch"])
    rows.append(("training epoch, 2000 lines", ours, theirs))

    prompts = [line[:10] for line in make_corpus(100, seed=1)]
    steps = 200
    _, first = model._prompt_states(prompts, model._prepared())
    greedy = torch_greedy(net, torch.from_numpy(first), steps)

    def ours_greedy():
        return model.generate(prompts, max_length=steps, min_length=steps)

    def ours_beam():
        return model.generate(prompts, beam_width=5, max_length=steps, min_length=steps)

    samples = interleaved_samples(
        {"rnntools": ours_greedy, "torch": greedy, "beam": ours_beam},
        repeats=args.repeats,
        min_sample_seconds=0.2,
    )
    ours = median_wall(samples["rnntools"])
    rows.append(
        ("greedy, 100 prompts x 200 chars", ours, median_wall(samples["torch"]))
    )
    beam = median_wall(samples["beam"])

    step_rows = []
    for input_size in (32, 128):
        params = rnntools.init_params("lstm", input_size, 128, random_state=0)
        prepared = prepare_step(params, "lstm")
        x = np.ones((1, input_size), np.float32)
        _, state = rnn_step(x, None, prepared)
        cell = torch.nn.LSTMCell(input_size, 128)
        x_t = torch.ones(1, input_size)
        hc = (torch.zeros(1, 128), torch.zeros(1, 128))

        def torch_step(cell=cell, x_t=x_t, hc=hc):
            with torch.no_grad():
                for _ in range(1000):
                    cell(x_t, hc)

        def our_step(x=x, state=state, prepared=prepared):
            for _ in range(1000):
                rnn_step(x, state, prepared)

        samples = interleaved_samples(
            {"rnntools": our_step, "torch": torch_step}, repeats=args.repeats
        )
        step_rows.append(
            (
                f"one LSTM step, B=1, I={input_size}, H=128",
                median_wall(samples["rnntools"]) / 1000,
                median_wall(samples["torch"]) / 1000,
            )
        )

    print(f"\n| {'measurement':<40} | rnntools | torch | ratio |")
    print(f"|:{'-' * 39}|--:|--:|--:|")
    for label, ours, theirs in rows:
        print(f"| {label:<40} | {ours:.3f} s | {theirs:.3f} s | {ours / theirs:.2f} |")
    for label, ours, theirs in step_rows:
        print(
            f"| {label:<40} | {ours * 1e6:.1f} us | {theirs * 1e6:.1f} us "
            f"| {ours / theirs:.2f} |"
        )
    print(
        f"\nbeam width 5 / our greedy: {beam:.3f} s / {rows[1][1]:.3f} s = "
        f"{beam / rows[1][1]:.2f}"
    )


if __name__ == "__main__":
    main()
