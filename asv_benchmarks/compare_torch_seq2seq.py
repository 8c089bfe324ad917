"""RNNSeq2Seq and RNNCaptioner against idiomatic PyTorch twins.

Same architecture, same weights (copied from the fitted rnntools model, and
checked: both must compute the same loss and gradients on a batch before
anything is timed), same data, same optimiser (Adam, batch 32, gradient
norm clipped at 5 as rnntools' default ``clip_grad_norm``), float32, same
threads, in the same process, with samples interleaved
(``benchmarks.common.interleaved_samples``).

Translation (``RNNSeq2Seq(cell="gru", bidirectional_encoder=True)``): a
transliteration task, each source a string of 10-30 random letters and
spaces, its target the string reversed and enciphered letter by letter
(vocabularies of ~31 symbols). The twin: ``nn.Embedding`` → bidirectional
``nn.GRU`` over a packed batch → bridge ``tanh(nn.Linear)`` of the last
layer's final states (both directions side by side) → decoder's initial
state; ``nn.Embedding`` → ``nn.GRU`` decoder, teacher forced → Luong
"general" attention over the encoder outputs (``bmm`` + padding masked with
``-inf``) → ``tanh(W_c [c; h])`` without bias → ``nn.Linear``.

Captioning (``RNNCaptioner(cell="gru", conditioning="init")``): a feature
vector (64 floats, a noisy random projection of a scene's attributes) →
a caption of 9 words ("there are three small red circles on the left",
vocabulary of ~30 words). The twin: ``h0 = tanh(nn.Linear(features))`` →
``nn.Embedding`` → ``nn.GRU`` → ``nn.Linear``.

Rows:

- one training epoch: ``partial_fit`` against a torch epoch (padding cut
  to each batch's longest sequence, ``CrossEntropyLoss(ignore_index=pad)``);
- greedy decoding of 500 inputs: ``generate(beam_width=1)`` against an
  ``nn.GRUCell`` step loop under ``torch.no_grad()`` (attention keys
  ``W_a h_s`` computed once), both forced to write the same number of tokens
  (``max_length=min_length``; eos masked in torch);
- beam search, width 5, against our own greedy time.

Prints the machine's fp32 GEMM peak and the load average first: ratios
differ between machines and with other load.

Run as::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \\
        python asv_benchmarks/compare_torch_seq2seq.py
"""

import argparse
import os
import warnings

import numpy as np
from benchmarks.common import interleaved_samples, median_wall
from compare_torch import gemm_peak
from sklearn.exceptions import ConvergenceWarning

import rnntools
from rnntools import RNNCaptioner, RNNSeq2Seq
from rnntools.estimators._generator import _Pairs
from rnntools.vocabulary import Vocabulary

LETTERS = "abcdefghijklmnopqrstuvwxyz"
CIPHER = str.maketrans(LETTERS, "qwertyuiopasdfghjklzxcvbnm")

COUNTS = ["two", "three", "four", "five", "six"]
SIZES = ["small", "large", "tiny"]
COLOURS = ["red", "green", "blue", "yellow", "black", "white"]
SHAPES = ["circles", "squares", "stars", "triangles", "crosses", "rings"]
PLACES = ["left", "right", "top", "bottom"]
ATTRIBUTES = (COUNTS, SIZES, COLOURS, SHAPES, PLACES)
N_FEATURES = 64

MAX_CLIP = 5.0  # rnntools' default clip_grad_norm


# ------------------------------------------------------------------- data
def make_translation(n, seed):
    """Sources of 10-30 letters and spaces; targets reversed and enciphered."""
    rng = np.random.default_rng(seed)
    alphabet = np.array(list(LETTERS + " "))
    sources = ["".join(rng.choice(alphabet, rng.integers(10, 31))) for _ in range(n)]
    return sources, [source[::-1].translate(CIPHER) for source in sources]


def make_captions(n, seed):
    """Feature vectors ``(n, 64)`` and captions of 9 words."""
    rng = np.random.default_rng(seed)
    projection = np.random.default_rng(12345).standard_normal(
        (sum(len(a) for a in ATTRIBUTES), N_FEATURES)
    )
    onehot = np.zeros((n, projection.shape[0]))
    captions = []
    for row in range(n):
        offset, picks = 0, []
        for words in ATTRIBUTES:
            pick = rng.integers(len(words))
            onehot[row, offset + pick] = 1.0
            offset += len(words)
            picks.append(words[pick])
        count, size, colour, shape, place = picks
        captions.append(
            ["there", "are", count, size, colour, shape, "on", "the", place]
        )
    features = onehot @ projection + 0.1 * rng.standard_normal((n, N_FEATURES))
    return features.astype(np.float32), captions


# ------------------------------------------------------------- torch twins
def _gru_state(params, prefix, suffixes=("_l0",)):
    return {
        f"{name}{suffix}": params[f"{prefix}{name}{suffix}"]
        for suffix in suffixes
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    }


def torch_seq2seq(model):
    """The translation twin holding ``model``'s weights (1 layer, GRU)."""
    import torch
    from torch import nn

    p = {k: torch.from_numpy(v.copy()) for k, v in model.params_.items()}
    hidden = model.hidden_size
    directions = 2 if model.bidirectional_encoder else 1
    memory = directions * hidden
    net = nn.ModuleDict(
        {
            "source_embedding": nn.Embedding(*p["encoder.embedding.weight"].shape),
            "encoder": nn.GRU(
                model.embedding_dim,
                hidden,
                batch_first=True,
                bidirectional=model.bidirectional_encoder,
            ),
            "bridge": nn.Linear(memory, hidden),
            "target_embedding": nn.Embedding(*p["decoder.embedding.weight"].shape),
            "decoder": nn.GRU(model.embedding_dim, hidden, batch_first=True),
            # keys W_a h_s: score(h_t, h_s) = h_t . W_a h_s
            "attention_a": nn.Linear(memory, hidden, bias=False),
            "attention_c": nn.Linear(memory + hidden, hidden, bias=False),
            "head": nn.Linear(hidden, p["head.weight"].shape[0]),
        }
    )
    suffixes = ("_l0", "_l0_reverse") if model.bidirectional_encoder else ("_l0",)
    state = {
        "source_embedding.weight": p["encoder.embedding.weight"],
        "bridge.weight": p["bridge.weight"],
        "bridge.bias": p["bridge.bias"],
        "target_embedding.weight": p["decoder.embedding.weight"],
        "attention_a.weight": p["attention.weight_a"],
        "attention_c.weight": p["attention.weight_c"],
        "head.weight": p["head.weight"],
        "head.bias": p["head.bias"],
    }
    state.update(
        {f"encoder.{k}": v for k, v in _gru_state(p, "encoder.", suffixes).items()}
    )
    state.update({f"decoder.{k}": v for k, v in _gru_state(p, "decoder.").items()})
    net.load_state_dict(state)
    return net


def torch_encode(net, source, source_lengths):
    """Encoder outputs ``(B, S, D*H)`` and the decoder's initial state."""
    import torch
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    packed = pack_padded_sequence(
        net["source_embedding"](source),
        source_lengths,
        batch_first=True,
        enforce_sorted=False,
    )
    output, h_n = net["encoder"](packed)
    memory, _ = pad_packed_sequence(
        output, batch_first=True, total_length=source.shape[1]
    )
    directions = 2 if net["encoder"].bidirectional else 1
    last = torch.cat(list(h_n[-directions:]), dim=1)  # (B, D*H)
    return memory, torch.tanh(net["bridge"](last)).unsqueeze(0)


def torch_seq2seq_logits(net, source, source_lengths, inputs):
    import torch

    memory, h0 = torch_encode(net, source, source_lengths)
    output, _ = net["decoder"](net["target_embedding"](inputs), h0)
    keys = net["attention_a"](memory)  # (B, S, H)
    scores = torch.bmm(output, keys.transpose(1, 2))  # (B, T, S)
    padding = torch.arange(source.shape[1]) >= source_lengths[:, None]
    scores = scores.masked_fill(padding[:, None, :], -float("inf"))
    weights = torch.softmax(scores, dim=2)
    context = torch.bmm(weights, memory)
    attentional = torch.tanh(net["attention_c"](torch.cat([context, output], dim=2)))
    return net["head"](attentional)


def torch_captioner(model):
    """The captioning twin holding ``model``'s weights (1 layer, GRU, init)."""
    import torch
    from torch import nn

    p = {k: torch.from_numpy(v.copy()) for k, v in model.params_.items()}
    net = nn.ModuleDict(
        {
            "bridge": nn.Linear(model.n_features_in_, model.hidden_size),
            "embedding": nn.Embedding(*p["decoder.embedding.weight"].shape),
            "decoder": nn.GRU(model.embedding_dim, model.hidden_size, batch_first=True),
            "head": nn.Linear(model.hidden_size, p["head.weight"].shape[0]),
        }
    )
    state = {
        "bridge.weight": p["bridge.weight"],
        "bridge.bias": p["bridge.bias"],
        "embedding.weight": p["decoder.embedding.weight"],
        "head.weight": p["head.weight"],
        "head.bias": p["head.bias"],
    }
    state.update({f"decoder.{k}": v for k, v in _gru_state(p, "decoder.").items()})
    net.load_state_dict(state)
    return net


def torch_captioner_logits(net, features, inputs):
    import torch

    h0 = torch.tanh(net["bridge"](features)).unsqueeze(0)
    output, _ = net["decoder"](net["embedding"](inputs), h0)
    return net["head"](output)


def torch_epoch(net, optimizer, logits_of, data, batch):
    """One shuffled epoch of Adam steps on ``data``: ``(*conditions, inputs,
    targets, target_lengths)``, padding cut to each batch's longest target."""
    import torch

    *conditions, inputs, targets, lengths = data
    loss_function = torch.nn.CrossEntropyLoss(ignore_index=Vocabulary.PAD)
    order = torch.randperm(len(inputs))
    for start in range(0, len(inputs), batch):
        index = order[start : start + batch]
        steps = int(lengths[index].max())
        optimizer.zero_grad()
        logits = logits_of(net, *(c[index] for c in conditions), inputs[index, :steps])
        loss = loss_function(
            logits.reshape(-1, logits.shape[-1]), targets[index, :steps].reshape(-1)
        )
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), MAX_CLIP)
        optimizer.step()


def seq2seq_batch(source, source_lengths):
    """The translation twin's per-batch conditions: padding cut to the batch."""

    def logits_of(net, src, src_lengths, inputs):
        width = int(src_lengths.max())
        return torch_seq2seq_logits(net, src[:, :width], src_lengths, inputs)

    return logits_of


def torch_seq2seq_greedy(net, source, source_lengths, steps):
    """Greedy ``nn.GRUCell`` loop writing ``steps`` tokens (eos masked)."""
    import torch

    gru = net["decoder"]
    cell = torch.nn.GRUCell(gru.input_size, gru.hidden_size)
    cell.load_state_dict(
        {
            "weight_ih": gru.weight_ih_l0,
            "weight_hh": gru.weight_hh_l0,
            "bias_ih": gru.bias_ih_l0,
            "bias_hh": gru.bias_hh_l0,
        }
    )
    forbidden = [Vocabulary.PAD, Vocabulary.BOS, Vocabulary.EOS]

    def run():
        with torch.no_grad():
            memory, h = torch_encode(net, source, source_lengths)
            h = h[0]
            keys = net["attention_a"](memory).transpose(1, 2)  # (B, H, S)
            padding = torch.arange(source.shape[1]) >= source_lengths[:, None]
            tokens = torch.full((len(source),), Vocabulary.BOS, dtype=torch.long)
            written = []
            for _ in range(steps):
                h = cell(net["target_embedding"](tokens), h)
                scores = torch.bmm(h.unsqueeze(1), keys).squeeze(1)  # (B, S)
                scores = scores.masked_fill(padding, -float("inf"))
                weights = torch.softmax(scores, dim=1)
                context = torch.bmm(weights.unsqueeze(1), memory).squeeze(1)
                attentional = torch.tanh(
                    net["attention_c"](torch.cat([context, h], dim=1))
                )
                logits = net["head"](attentional)
                logits[:, forbidden] = -float("inf")
                tokens = torch.log_softmax(logits, dim=1).argmax(dim=1)
                written.append(tokens)
            return torch.stack(written, dim=1)

    return run


def torch_captioner_greedy(net, features, steps):
    """Greedy ``nn.GRUCell`` loop writing ``steps`` tokens (eos masked)."""
    import torch

    gru = net["decoder"]
    cell = torch.nn.GRUCell(gru.input_size, gru.hidden_size)
    cell.load_state_dict(
        {
            "weight_ih": gru.weight_ih_l0,
            "weight_hh": gru.weight_hh_l0,
            "bias_ih": gru.bias_ih_l0,
            "bias_hh": gru.bias_hh_l0,
        }
    )
    forbidden = [Vocabulary.PAD, Vocabulary.BOS, Vocabulary.EOS]

    def run():
        with torch.no_grad():
            h = torch.tanh(net["bridge"](features))
            tokens = torch.full((len(features),), Vocabulary.BOS, dtype=torch.long)
            written = []
            for _ in range(steps):
                h = cell(net["embedding"](tokens), h)
                logits = net["head"](h)
                logits[:, forbidden] = -float("inf")
                tokens = torch.log_softmax(logits, dim=1).argmax(dim=1)
                written.append(tokens)
            return torch.stack(written, dim=1)

    return run


# ------------------------------------------------------------------ checks
def check_same_model(model, pairs, targets, lengths, net, logits_of, conditions):
    """Loss and gradient norm of the first 32 pairs in both libraries; exits
    on a mismatch (loss beyond 1e-5, gradient norm beyond 1e-4 relative)."""
    import torch

    index = np.arange(32)
    steps = int(lengths[index].max())
    loss, grads, _ = model._loss_and_grads(
        pairs[index, :steps],
        lengths[index],
        targets[index],
        np.ones(32),
        None,
        model.params_,
    )
    net.zero_grad()
    logits = logits_of(
        net, *(c[:32] for c in conditions), torch.from_numpy(pairs.inputs[:32, :steps])
    )
    torch_loss = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]),
        torch.from_numpy(targets[:32, :steps]).reshape(-1),
        ignore_index=Vocabulary.PAD,
    )
    torch_loss.backward()
    ours_norm = np.sqrt(
        sum(float((g.astype(np.float64) ** 2).sum()) for g in grads.values())
    )
    theirs_norm = np.sqrt(
        sum(float((p.grad.double() ** 2).sum()) for p in net.parameters())
    )
    gap = abs(ours_norm - theirs_norm) / theirs_norm
    name = type(model).__name__
    if abs(loss - torch_loss.item()) > 1e-5 * max(1.0, abs(loss)) or gap > 1e-4:
        raise SystemExit(
            f"{name} and its torch twin differ: loss {loss:.7f} vs "
            f"{torch_loss.item():.7f}, gradient norm {ours_norm:.6g} vs "
            f"{theirs_norm:.6g}: not timing different models."
        )
    print(
        f"{name}: loss on 32 pairs {loss:.7f} (rnntools) vs {torch_loss.item():.7f} "
        f"(torch), gradient norms differ by {gap:.1e} (relative)"
    )


def agreement(ours, theirs, vocabulary):
    """Fraction of inputs whose greedy outputs are identical."""
    theirs = theirs.numpy()
    same = 0
    for row, written in enumerate(ours):
        ids = vocabulary.encode([list(written)])[0]
        same += np.array_equal(np.asarray(ids), theirs[row])
    return same / len(ours)


# -------------------------------------------------------------------- main
def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count()))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--pairs", type=int, default=2000, help="training pairs")
    parser.add_argument("--decode", type=int, default=500, help="inputs decoded")
    parser.add_argument("--hidden-size", type=int, default=64)
    parser.add_argument(
        "--unidirectional",
        action="store_true",
        help="unidirectional encoder in both libraries (default: bidirectional)",
    )
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
    bidirectional = not args.unidirectional
    common = {
        "cell": "gru",
        "hidden_size": args.hidden_size,
        "embedding_dim": 32,
        "batch_size": 32,
        "random_state": 0,
    }
    rows, beams = [], []

    # ------------------------------------------------------------ translation
    sources, targets_text = make_translation(args.pairs, seed=0)
    model = RNNSeq2Seq(bidirectional_encoder=bidirectional, **common)
    model.partial_fit(sources, targets_text)  # compiles; builds the vocabularies
    print(
        f"RNNSeq2Seq(cell='gru', hidden_size={args.hidden_size}, embedding_dim=32, "
        f"bidirectional_encoder={bidirectional}, attention='general'): "
        f"source vocabulary {len(model.source_vocabulary_)}, target vocabulary "
        f"{len(model.vocabulary_)}, {args.pairs} pairs"
    )
    net = torch_seq2seq(model)
    source, source_lengths, _ = model._check_condition(sources, first_call=False)
    inputs, targets, lengths = model._encode_targets(targets_text, model.vocabulary_)
    pairs = _Pairs(inputs, source, source_lengths)
    source_t = torch.from_numpy(source)
    source_lengths_t = torch.from_numpy(source_lengths)
    logits_of = seq2seq_batch(source_t, source_lengths_t)
    check_same_model(
        model, pairs, targets, lengths, net, logits_of, (source_t, source_lengths_t)
    )
    optimizer = torch.optim.Adam(net.parameters(), lr=model.learning_rate_init)
    data = (
        source_t,
        source_lengths_t,
        torch.from_numpy(inputs),
        torch.from_numpy(targets),
        torch.from_numpy(lengths),
    )
    samples = interleaved_samples(
        {
            "rnntools": lambda: model.partial_fit(sources, targets_text),
            "torch": lambda: torch_epoch(net, optimizer, logits_of, data, 32),
        },
        repeats=args.repeats,
    )
    rows.append(
        (
            f"seq2seq training epoch, {args.pairs} pairs",
            median_wall(samples["rnntools"]),
            median_wall(samples["torch"]),
        )
    )

    # decoding: weights as they now are, copied again
    net = torch_seq2seq(model)
    test_sources, _ = make_translation(args.decode, seed=1)
    steps = 30
    test, test_lengths, _ = model._check_condition(test_sources, first_call=False)
    greedy = torch_seq2seq_greedy(
        net, torch.from_numpy(test), torch.from_numpy(test_lengths), steps
    )

    def ours_greedy():
        return model.generate(
            test_sources, beam_width=1, max_length=steps, min_length=steps
        )

    def ours_beam():
        return model.generate(
            test_sources, beam_width=5, max_length=steps, min_length=steps
        )

    same = agreement(ours_greedy(), greedy(), model.vocabulary_)
    print(f"RNNSeq2Seq greedy outputs identical to torch's for {same:.1%} of sources")
    samples = interleaved_samples(
        {"rnntools": ours_greedy, "torch": greedy, "beam": ours_beam},
        repeats=args.repeats,
        min_sample_seconds=0.2,
    )
    ours = median_wall(samples["rnntools"])
    rows.append(
        (
            f"seq2seq greedy, {args.decode} sources x {steps}",
            ours,
            median_wall(samples["torch"]),
        )
    )
    beams.append(("seq2seq", median_wall(samples["beam"]), ours))

    # -------------------------------------------------------------- captions
    features, captions = make_captions(args.pairs, seed=0)
    model = RNNCaptioner(conditioning="init", **common)
    model.partial_fit(features, captions)
    print(
        f"RNNCaptioner(cell='gru', hidden_size={args.hidden_size}, embedding_dim=32, "
        f"conditioning='init'): {N_FEATURES} features, vocabulary "
        f"{len(model.vocabulary_)}, {args.pairs} pairs"
    )
    net = torch_captioner(model)
    inputs, targets, lengths = model._encode_targets(captions, model.vocabulary_)
    pairs = _Pairs(inputs, features)
    features_t = torch.from_numpy(features)
    check_same_model(
        model, pairs, targets, lengths, net, torch_captioner_logits, (features_t,)
    )
    optimizer = torch.optim.Adam(net.parameters(), lr=model.learning_rate_init)
    data = (
        features_t,
        torch.from_numpy(inputs),
        torch.from_numpy(targets),
        torch.from_numpy(lengths),
    )
    samples = interleaved_samples(
        {
            "rnntools": lambda: model.partial_fit(features, captions),
            "torch": lambda: torch_epoch(
                net, optimizer, torch_captioner_logits, data, 32
            ),
        },
        repeats=args.repeats,
    )
    rows.append(
        (
            f"captioner training epoch, {args.pairs} pairs",
            median_wall(samples["rnntools"]),
            median_wall(samples["torch"]),
        )
    )

    net = torch_captioner(model)
    test_features, _ = make_captions(args.decode, seed=1)
    steps = 10
    greedy = torch_captioner_greedy(net, torch.from_numpy(test_features), steps)

    def ours_greedy_captions():
        return model.generate(
            test_features, beam_width=1, max_length=steps, min_length=steps
        )

    def ours_beam_captions():
        return model.generate(
            test_features, beam_width=5, max_length=steps, min_length=steps
        )

    same = agreement(ours_greedy_captions(), greedy(), model.vocabulary_)
    print(f"RNNCaptioner greedy outputs identical to torch's for {same:.1%} of inputs")
    samples = interleaved_samples(
        {"rnntools": ours_greedy_captions, "torch": greedy, "beam": ours_beam_captions},
        repeats=args.repeats,
        min_sample_seconds=0.2,
    )
    ours = median_wall(samples["rnntools"])
    rows.append(
        (
            f"captioner greedy, {args.decode} inputs x {steps}",
            ours,
            median_wall(samples["torch"]),
        )
    )
    beams.append(("captioner", median_wall(samples["beam"]), ours))

    print(f"\nload average {os.getloadavg()[0]:.2f}")
    print(f"\n| {'measurement':<42} | rnntools | torch | ratio |")
    print(f"|:{'-' * 41}|--:|--:|--:|")
    for label, ours, theirs in rows:
        print(
            f"| {label:<42} | {ours * 1e3:.1f} ms | {theirs * 1e3:.1f} ms "
            f"| {ours / theirs:.2f} |"
        )
    print()
    for name, beam, greedy_time in beams:
        print(
            f"{name} beam width 5 / our greedy: {beam * 1e3:.1f} ms / "
            f"{greedy_time * 1e3:.1f} ms "
            f"= {beam / greedy_time:.2f}"
        )


if __name__ == "__main__":
    main()
