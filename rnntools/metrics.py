"""Corpus BLEU, computed as sacrebleu computes it, without sacrebleu.

:func:`corpus_bleu` gives the score of ``sacrebleu.corpus_bleu`` with its
defaults (exponential smoothing, n-grams up to order 4, no effective order,
case kept) for the ``"13a"`` and ``"none"`` tokenizers, so a score reported
by an rnntools estimator can be compared with published ones.
"""

import math
import re
from collections import Counter
from numbers import Integral

import numpy as np

__all__ = ["corpus_bleu"]

MAX_NGRAM_ORDER = 4
_TOKENIZE_OPTIONS = ("13a", "none")

# sacrebleu.tokenizers.tokenizer_re.TokenizerRegexp, applied in this order.
_13A_RULES = (
    # Punctuation and symbols (ASCII ranges {-~, [-`, space-&, (-+, :-@, /).
    (re.compile(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])"), r" \1 "),
    # Period and comma, unless preceded by a digit.
    (re.compile(r"([^0-9])([\.,])"), r"\1 \2 "),
    # Period and comma, unless followed by a digit.
    (re.compile(r"([\.,])([^0-9])"), r" \1 \2"),
    # Dash preceded by a digit.
    (re.compile(r"([0-9])(-)"), r"\1 \2 "),
)


def _tokenize_13a(line):
    """Tokens of ``line`` by sacrebleu's ``13a`` tokenizer (mteval-v13a).

    The trailing whitespace is stripped first, as sacrebleu does before it
    tokenizes a segment.
    """
    line = line.rstrip()
    line = line.replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    if "&" in line:
        line = line.replace("&quot;", '"').replace("&amp;", "&")
        line = line.replace("&lt;", "<").replace("&gt;", ">")
    line = f" {line} "
    for pattern, replacement in _13A_RULES:
        line = pattern.sub(replacement, line)
    return line.split()


_TOKENIZERS = {"13a": _tokenize_13a, "none": str.split}


def _describe(value):
    """A short description of ``value`` for an error message."""
    if isinstance(value, np.ndarray):
        return f"an array of dtype {value.dtype} and shape {value.shape}"
    shown = repr(value)
    return shown if len(shown) <= 60 else f"a {type(value).__name__}"


def _is_token(value):
    return isinstance(value, (str, Integral)) and not isinstance(
        value, (bool, np.bool_)
    )


def _is_token_sequence(value):
    return isinstance(value, (list, tuple, np.ndarray))


class _TokenKind:
    """The kind of the corpus's tokens, ``str`` or ``int``: fixed by the first
    token seen, then enforced."""

    def __init__(self):
        self.kind = None
        self.first_where = None

    def check(self, tokens, where):
        for token in tokens:
            if not _is_token(token):
                raise TypeError(
                    f"Tokens must be str or int, but {where} holds "
                    f"{_describe(token)} of type {type(token).__name__}."
                )
            kind = "str" if isinstance(token, str) else "int"
            if self.kind is None:
                self.kind, self.first_where = kind, where
            elif kind != self.kind:
                raise TypeError(
                    f"{where} holds {kind} tokens, but {self.first_where} holds "
                    f"{self.kind} tokens; all tokens must be of one kind (a str "
                    "token never matches an int one)."
                )


def _as_list(sequence):
    """A list, tuple or array as a list (arrays converted to Python scalars)."""
    return sequence.tolist() if isinstance(sequence, np.ndarray) else list(sequence)


def _check_corpus(value, name):
    if isinstance(value, (str, bytes)):
        raise TypeError(
            f"{name} is a single {type(value).__name__}; pass a list with one "
            "item per segment (e.g. [text] for one text)."
        )
    if not isinstance(value, (list, tuple, np.ndarray)) or (
        isinstance(value, np.ndarray) and value.ndim == 0
    ):
        raise TypeError(
            f"{name} must be a list (or tuple) with one item per segment; got "
            f"{_describe(value)}."
        )
    return list(value)


def _text_references(item, where):
    """The references of one segment given as text: a str or a list of str."""
    if isinstance(item, str):
        return [item]
    if not _is_token_sequence(item):
        raise TypeError(
            f"{where} is {_describe(item)}; with text hypotheses, each item of "
            "references must be a str or a list of str (several references)."
        )
    references = _as_list(item)
    if not references:
        raise ValueError(f"{where} is empty: each hypothesis needs a reference.")
    for index, reference in enumerate(references):
        if not isinstance(reference, str):
            raise TypeError(
                f"Reference {index} of {where} is {_describe(reference)}; with "
                "text hypotheses, references must be str."
            )
    return references


def _token_references(item, where, token_kind):
    """The references of one segment given as tokens: a token sequence, or a
    list of token sequences. An empty sequence is one empty reference."""
    if isinstance(item, str) or not _is_token_sequence(item):
        raise TypeError(
            f"{where} is {_describe(item)}; with token-sequence hypotheses, each "
            "item of references must be a token sequence (a list, tuple or 1-D "
            "array of str or int tokens) or a list of them (several references)."
        )
    elements = _as_list(item)
    if all(_is_token_sequence(element) for element in elements) and elements:
        references = [_as_list(element) for element in elements]
        for index, reference in enumerate(references):
            token_kind.check(reference, f"reference {index} of {where}")
        return references
    if any(_is_token_sequence(element) for element in elements):
        raise TypeError(
            f"{where} mixes tokens and token sequences; pass one token sequence "
            "(one reference) or a list of token sequences (several references)."
        )
    token_kind.check(elements, where)
    return [elements]


def _check_inputs(references, hypotheses, tokenize):
    """Validate the inputs; return a list of (hypothesis tokens, list of
    reference tokens) per segment."""
    if not (isinstance(tokenize, str) and tokenize in _TOKENIZE_OPTIONS):
        raise ValueError(
            f"tokenize must be one of {_TOKENIZE_OPTIONS}; got {tokenize!r}."
        )
    references = _check_corpus(references, "references")
    hypotheses = _check_corpus(hypotheses, "hypotheses")
    if len(references) != len(hypotheses):
        raise ValueError(
            f"references has {len(references)} items and hypotheses "
            f"{len(hypotheses)}; each hypothesis needs its item of references."
        )
    if not hypotheses:
        raise ValueError("The corpus is empty: expected at least one hypothesis.")

    is_text = isinstance(hypotheses[0], str)
    for index, hypothesis in enumerate(hypotheses):
        if isinstance(hypothesis, str) != is_text or not (
            is_text or _is_token_sequence(hypothesis)
        ):
            first = "a str" if is_text else "a token sequence"
            raise TypeError(
                f"Hypothesis {index} is {_describe(hypothesis)} (hypothesis 0 is "
                f"{first}); hypotheses must be all str or all token sequences "
                "(lists, tuples or 1-D arrays of str or int tokens)."
            )

    if is_text:
        tokenizer = _TOKENIZERS[tokenize]
        return [
            (
                tokenizer(hypothesis),
                [
                    tokenizer(reference)
                    for reference in _text_references(item, f"references[{index}]")
                ],
            )
            for index, (hypothesis, item) in enumerate(
                zip(hypotheses, references, strict=True)
            )
        ]
    token_kind = _TokenKind()
    segments = []
    for index, (hypothesis, item) in enumerate(
        zip(hypotheses, references, strict=True)
    ):
        hypothesis = _as_list(hypothesis)
        token_kind.check(hypothesis, f"hypothesis {index}")
        segments.append(
            (hypothesis, _token_references(item, f"references[{index}]", token_kind))
        )
    return segments


def _ngram_counts(tokens):
    """Counts of the n-grams of ``tokens``, 1 <= n <= 4, as tuples."""
    return Counter(
        tuple(tokens[start : start + n])
        for n in range(1, MAX_NGRAM_ORDER + 1)
        for start in range(len(tokens) - n + 1)
    )


def _closest_reference_length(hypothesis_length, reference_lengths):
    """The reference length closest to the hypothesis length; the shorter one
    on a tie."""
    return min(
        reference_lengths,
        key=lambda length: (abs(hypothesis_length - length), length),
    )


def _segment_statistics(hypothesis, references):
    """``(hypothesis length, reference length, matches, totals)`` of one
    segment; matches and totals are lists of 4 ints, one per n-gram order."""
    reference_counts = Counter()
    for reference in references:
        reference_counts |= _ngram_counts(reference)  # max over references
    matches = [0] * MAX_NGRAM_ORDER
    totals = [0] * MAX_NGRAM_ORDER
    for ngram, count in _ngram_counts(hypothesis).items():
        totals[len(ngram) - 1] += count
        matches[len(ngram) - 1] += min(count, reference_counts[ngram])
    reference_length = _closest_reference_length(
        len(hypothesis), [len(reference) for reference in references]
    )
    return len(hypothesis), reference_length, matches, totals


def _bleu_from_statistics(hypothesis_length, reference_length, matches, totals):
    """BLEU (0-100) from the corpus's summed statistics, with exponential
    smoothing, as ``sacrebleu.BLEU.compute_bleu`` computes it."""
    if not any(matches):
        return 0.0
    brevity_penalty = 1.0
    if hypothesis_length < reference_length:
        brevity_penalty = math.exp(1 - reference_length / hypothesis_length)
    log_precisions = []
    smoothing = 1.0
    for n_matches, n_total in zip(matches, totals, strict=True):
        if n_total == 0:
            # Precision 0: sacrebleu floors its log at -9999999999, and the
            # score underflows to exactly 0.
            return 0.0
        if n_matches == 0:
            smoothing *= 2
            precision = 100.0 / (smoothing * n_total)
        else:
            precision = 100.0 * n_matches / n_total
        log_precisions.append(math.log(precision))
    return brevity_penalty * math.exp(sum(log_precisions) / MAX_NGRAM_ORDER)


def corpus_bleu(references, hypotheses, *, tokenize="13a"):
    """Corpus BLEU, as ``sacrebleu.corpus_bleu`` with its defaults computes it.

    Parameters
    ----------
    references : list of length n
        The references of each hypothesis: one reference, or a list of
        references (several references per hypothesis; their number may differ
        from one hypothesis to the next). A reference has the form of the
        hypotheses: a str when they are strings, a token sequence when they are
        token sequences. With token sequences, a list of tokens is one
        reference and a list of token sequences several; an empty list is one
        empty reference.
    hypotheses : list of length n
        Either all strings, tokenized by ``tokenize``, or all token sequences
        (lists, tuples or 1-D arrays of tokens, as the estimators' ``predict``
        returns), used as they are: no tokenization, and a token is an n-gram
        element even if it contains spaces or punctuation. Tokens are all
        ``str`` or all ``int``.
    tokenize : {"13a", "none"}, default="13a"
        How strings are split into tokens: ``"13a"`` is sacrebleu's default
        tokenizer (that of WMT's mteval-v13a: punctuation and symbols split off,
        except periods and commas inside numbers); ``"none"`` splits on
        whitespace only. Ignored for token sequences.

    Returns
    -------
    score : float
        BLEU between 0 and 100.

    Raises
    ------
    TypeError
        If ``references`` or ``hypotheses`` are not lists, the hypotheses mix
        strings and token sequences, a reference does not have the form of the
        hypotheses, or a token is neither str nor int, or str and int tokens
        are mixed.
    ValueError
        If ``tokenize`` is unknown, ``references`` and ``hypotheses`` differ in
        length, the corpus is empty, or a hypothesis has no reference.

    Notes
    -----
    For each segment, the hypothesis's n-grams (``1 <= n <= N = 4``) are
    matched against the references, each n-gram's count clipped to its largest
    count in any one reference; the reference length ``r_i`` is the length of
    the reference closest to the hypothesis length ``c_i`` (the shorter on a
    tie). Summed over the corpus, ``m_n`` matches out of ``t_n`` n-grams,
    ``c = sum(c_i)`` and ``r = sum(r_i)`` give

    .. math::

        \\mathrm{BLEU} = \\mathrm{BP} \\cdot
            \\exp\\Big(\\frac{1}{N} \\sum_{n=1}^{N} \\log p_n\\Big),
        \\qquad \\mathrm{BP} = \\min(1, e^{1 - r / c}),

    with ``p_n = 100 m_n / t_n``, and, for the ``k``-th order with no match,
    ``p_n = 100 / (2^k t_n)`` (exponential smoothing, NIST's method 3 in Chen
    and Cherry, 2014). The score is 0 when nothing matches, and when the
    hypotheses hold no n-gram of some order (every hypothesis shorter than 4
    tokens, for instance): sacrebleu's corpus BLEU does not reduce the order
    (``use_effective_order=False``). Case matters (``lowercase=False``). The
    arithmetic is sacrebleu's, rounding included: a perfect match scores
    ``exp(log(100))``, 100 to within 1e-13.

    sacrebleu takes reference *streams* (``refs[j][i]`` is the ``j``-th
    reference of hypothesis ``i``) padded with ``None`` where a hypothesis has
    fewer references; here each hypothesis has its own list, so
    ``corpus_bleu(references, hypotheses)`` is
    ``sacrebleu.corpus_bleu(hypotheses, streams).score`` with
    ``streams = [list(s) for s in itertools.zip_longest(*references)]`` when
    every item of ``references`` is a list of strings.

    References
    ----------
    K. Papineni, S. Roukos, T. Ward and W.-J. Zhu, "BLEU: a method for
    automatic evaluation of machine translation", ACL 2002.

    M. Post, "A call for clarity in reporting BLEU scores", WMT 2018
    (sacrebleu).

    Examples
    --------
    >>> from rnntools.metrics import corpus_bleu
    >>> round(corpus_bleu(["The cat sat on the mat."], ["The cat sat on the mat."]), 9)
    100.0
    >>> round(corpus_bleu([["the", "cat", "sat", "on", "a", "mat"]],
    ...                   [["the", "cat", "sat", "on", "the", "mat"]]), 4)
    53.7285
    """
    segments = _check_inputs(references, hypotheses, tokenize)
    hypothesis_length = reference_length = 0
    matches = [0] * MAX_NGRAM_ORDER
    totals = [0] * MAX_NGRAM_ORDER
    for hypothesis, segment_references in segments:
        segment = _segment_statistics(hypothesis, segment_references)
        hypothesis_length += segment[0]
        reference_length += segment[1]
        for n in range(MAX_NGRAM_ORDER):
            matches[n] += segment[2][n]
            totals[n] += segment[3][n]
    return float(
        _bleu_from_statistics(hypothesis_length, reference_length, matches, totals)
    )
