"""Sentiment sentences where word order matters: SST-2-like short reviews and IMDB-like long ones.

A small grammar writes clauses about a film ("the acting was not good", "the plot is hardly worth it", "the
pacing was far too slow") and joins them with contrast ("A but B", "although A, B", "B, even though A") or
agreement ("A and B"). Negation ("not", "never", "hardly") flips a clause; in a contrast the main clause decides
the label, and which clause is the main one depends on the connective and its position. Every word is as likely
in positive as in negative sentences, so a bag-of-words reader does poorly while a model that reads order
does well (`bag_of_words_accuracy`, `order_aware_accuracy`; measured in tests and `benchmarks/`).

Schemas and files mirror the real datasets: SST-2 as in GLUE (`sentence`, `label` 0 negative / 1 positive,
`idx`; TSV with a `sentence\\tlabel` header), IMDB as on the Hub (`text`, `label` 0 neg / 1 pos; folders
`<root>/<train|test>/<pos|neg>/<id>_<rating>.txt`).

>>> ds = generate_sst2(4, seed=0)
>>> ds.column_names, ds.features["label"].names
(['sentence', 'label', 'idx'], ['negative', 'positive'])
"""

from __future__ import annotations

import re
from pathlib import Path

import datasets
import numpy as np

from .world import SPLIT_NAMES, build_dataset, check_count, seed_key, seed_sequence, split_seeds

__all__ = [
    "bag_of_words_accuracy",
    "generate_imdb",
    "generate_sentiment_splits",
    "generate_sst2",
    "imdb_features",
    "order_aware_accuracy",
    "sst2_features",
    "tokenize",
    "write_imdb",
    "write_sst2_tsv",
]

_VERSION = 1
ASPECTS = ("the acting", "the plot", "the script", "the soundtrack", "the pacing", "the ending", "the cast",
           "the dialogue", "the direction", "the camera work", "the story", "the humour")  # fmt: skip
POSITIVE = ("good", "great", "brilliant", "charming", "moving", "clever", "gripping", "funny", "beautiful",
            "worth it", "a joy to watch", "well paced")  # fmt: skip
NEGATIVE = ("bad", "dull", "boring", "awful", "weak", "clumsy", "tedious", "bland", "messy", "forgettable",
            "a waste of time", "too long")  # fmt: skip
INTENSIFIERS = ("", "", "very ", "really ", "truly ", "remarkably ", "quite ")
NEGATORS = ("not ", "never ", "hardly ")
_FILLER = ("I watched it on a rainy sunday.", "The film runs for about two hours.", "It came out a few years ago.",
           "I went in knowing nothing about it.", "My friend had recommended it.", "It is based on a novel.",
           "The trailer gave away a lot.", "I saw it in a small cinema.")  # fmt: skip
_TOKEN = re.compile(r"[a-z0-9']+|[.,!?;]")


def tokenize(text: str) -> list[str]:
    """Lower-cased words and punctuation marks.

    >>> tokenize("Not bad, really!")
    ['not', 'bad', ',', 'really', '!']
    """
    return _TOKEN.findall(text.lower())


def sst2_features() -> datasets.Features:
    """GLUE SST-2's features (`label` -1 for the unlabelled test split of real GLUE files)."""
    return datasets.Features({"sentence": datasets.Value("string"),
                              "label": datasets.ClassLabel(names=["negative", "positive"]),
                              "idx": datasets.Value("int32")})  # fmt: skip


def imdb_features() -> datasets.Features:
    """The Hub's IMDB features."""
    return datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])})


def _clause(rng, polarity: int, negation_rate: float) -> str:
    """A clause whose meaning has `polarity` (+1 / -1); negated with probability `negation_rate`."""
    negated = rng.random() < negation_rate
    words = POSITIVE if (polarity > 0) != negated else NEGATIVE
    adjective = words[int(rng.integers(len(words)))]
    aspect = ASPECTS[int(rng.integers(len(ASPECTS)))]
    verb = ("was", "is")[int(rng.integers(2))]
    intensifier = INTENSIFIERS[int(rng.integers(len(INTENSIFIERS)))] if " " not in adjective else ""
    negator = NEGATORS[int(rng.integers(len(NEGATORS)))] if negated else ""
    return f"{aspect} {verb} {negator}{intensifier}{adjective}"


def _sentence(rng, label: int, negation_rate: float = 0.5) -> str:
    """One review sentence with `label` (1 positive, 0 negative)."""
    p = 1 if label else -1
    form = int(rng.integers(5))
    if form == 0:
        text = _clause(rng, p, negation_rate)
    elif form == 1:
        text = f"{_clause(rng, -p, negation_rate)} but {_clause(rng, p, negation_rate)}"
    elif form == 2:
        text = f"although {_clause(rng, -p, negation_rate)}, {_clause(rng, p, negation_rate)}"
    elif form == 3:
        text = f"{_clause(rng, p, negation_rate)}, even though {_clause(rng, -p, negation_rate)}"
    else:
        text = f"{_clause(rng, p, negation_rate)} and {_clause(rng, p, negation_rate)}"
    return text[0].upper() + text[1:] + "."


def _labels(rng, count: int) -> np.ndarray:
    """Exactly balanced labels (one extra positive when `count` is odd), shuffled."""
    return rng.permutation(1 - np.arange(count) % 2)


def generate_sst2(num_sentences: int, seed=0, split: str | None = None) -> datasets.Dataset:
    """SST-2-like short reviews (`sst2_features`), half positive and half negative, deterministic by `seed`.

    >>> [r["sentence"] for r in generate_sst2(2, seed=0)] == [r["sentence"] for r in generate_sst2(2, seed=0)]
    True
    """
    num_sentences = check_count("num_sentences", num_sentences)
    rng = np.random.default_rng(seed_sequence(seed))
    labels = _labels(rng, num_sentences)
    columns = {"sentence": [_sentence(rng, int(y)) for y in labels], "label": labels.tolist(),
               "idx": list(range(num_sentences))}  # fmt: skip
    return build_dataset(columns, sst2_features(), ("sst2", _VERSION, num_sentences, seed_key(seed)), split)


def _review(rng, label: int) -> str:
    """3 or 5 opinion sentences (the majority has the review's label) among neutral filler."""
    opinions = int(rng.choice([3, 5]))
    majority = opinions // 2 + 1
    votes = rng.permutation([label] * majority + [1 - label] * (opinions - majority))
    sentences = [_sentence(rng, int(v)) for v in votes]
    for _ in range(int(rng.integers(1, 4))):
        sentences.insert(int(rng.integers(len(sentences) + 1)), _FILLER[int(rng.integers(len(_FILLER)))])
    return " ".join(sentences)


def generate_imdb(num_reviews: int, seed=0, split: str | None = None) -> datasets.Dataset:
    """IMDB-like long reviews (`imdb_features`): several opinion sentences, the majority deciding the label,
    mixed with neutral sentences; balanced labels.

    >>> len(generate_imdb(1, seed=0)[0]["text"].split(".")) > 4
    True
    """
    num_reviews = check_count("num_reviews", num_reviews)
    rng = np.random.default_rng(seed_sequence(seed))
    labels = _labels(rng, num_reviews)
    columns = {"text": [_review(rng, int(y)) for y in labels], "label": labels.tolist()}
    return build_dataset(columns, imdb_features(), ("imdb", _VERSION, num_reviews, seed_key(seed)), split)


def generate_sentiment_splits(kind: str, num_train: int, num_validation: int, num_test: int, seed=0):
    """Train / validation / test splits of `kind` "sst2" or "imdb" from disjoint child seeds.

    >>> {k: v.num_rows for k, v in generate_sentiment_splits("sst2", 4, 2, 2).items()}
    {'train': 4, 'validation': 2, 'test': 2}
    """
    makers = {"sst2": generate_sst2, "imdb": generate_imdb}
    if kind not in makers:
        raise ValueError(f"`kind` must be 'sst2' or 'imdb', got {kind!r}.")
    counts = dict(zip(SPLIT_NAMES, (num_train, num_validation, num_test)))
    return datasets.DatasetDict({n: makers[kind](counts[n], s, n) for n, s in split_seeds(seed).items()})


def write_sst2_tsv(dataset: datasets.Dataset, path) -> Path:
    """Write GLUE's SST-2 TSV (`sentence\\tlabel` header, one row per sentence) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["sentence\tlabel"] + [f"{s}\t{y}" for s, y in zip(dataset["sentence"], dataset["label"])]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_imdb(root, splits: dict, seed=0) -> Path:
    """Write IMDB's folder layout `<root>/<split>/<pos|neg>/<id>_<rating>.txt` for `splits` ({"train": ds,
    "test": ds}; ratings drawn 7-10 for pos and 1-4 for neg, as in the real files) and return `root`."""
    root = Path(root)
    rng = np.random.default_rng(seed_sequence(seed))
    for split, dataset in splits.items():
        for folder in ("pos", "neg"):
            (root / split / folder).mkdir(parents=True, exist_ok=True)
        for i, (text, label) in enumerate(zip(dataset["text"], dataset["label"])):
            rating = int(rng.integers(7, 11)) if label else int(rng.integers(1, 5))
            (root / split / ("pos" if label else "neg") / f"{i}_{rating}.txt").write_text(text, encoding="utf-8")
    return root


# ---------------------------------------------------------------------------------------------
# Baselines: bag of words versus a reader of order
# ---------------------------------------------------------------------------------------------


def _vocabulary(texts) -> dict:
    words = sorted({w for t in texts for w in tokenize(t)})
    return {w: i + 1 for i, w in enumerate(words)}  # 0: padding / unknown


def bag_of_words_accuracy(train_texts, train_labels, test_texts, test_labels) -> float:
    """Test accuracy of logistic regression on word counts (order-blind), fitted on the training texts.

    >>> bag_of_words_accuracy(["good", "bad"] * 10, [1, 0] * 10, ["good", "bad"], [1, 0])
    1.0
    """
    from .probes import LogisticProbe

    vocab = _vocabulary(train_texts)

    def counts(texts):
        x = np.zeros((len(texts), len(vocab) + 1))
        for row, t in enumerate(texts):
            for w in tokenize(t):
                x[row, vocab.get(w, 0)] += 1
        return x

    probe = LogisticProbe(steps=400, lr=0.5, weight_decay=1e-3).fit(counts(train_texts), np.asarray(train_labels))
    return probe.accuracy(counts(test_texts), np.asarray(test_labels))


def order_aware_accuracy(train_texts, train_labels, test_texts, test_labels, seed: int = 0, epochs: int = 8,
                         hidden_size: int = 32, batch_size: int = 32) -> float:  # fmt: skip
    """Test accuracy of a small reader of word order, trained with Adam on the training texts; deterministic by
    `seed` on CPU. A GRU reads each sentence of a text left to right; the logits at each sentence's last word
    are summed over the text's sentences (a short review is one sentence; a long one adds up its sentences'
    verdicts). Runs on one torch thread (its tiny recurrent steps gain nothing from more and lose a lot when other
    processes share the cores); the caller's thread count is restored.

    Shapes: sentence ids (sentences, words) -> embeddings (sentences, words, 32) -> GRU outputs
    (sentences, words, hidden_size) -> per-sentence logits (sentences, 2) -> summed per text (batch, 2).
    """
    import torch

    vocab = _vocabulary(train_texts)

    def encode(texts):
        """-> padded sentence ids (S, words), last-word index (S,), first sentence and count per text (T,)."""
        sentences, first, count = [], [], []
        for text in texts:
            words, parts = tokenize(text), []
            start = 0
            for i, w in enumerate(words):
                if w in (".", "!", "?") or i == len(words) - 1:
                    parts.append([vocab.get(t, 0) for t in words[start : i + 1]])
                    start = i + 1
            parts = parts or [[0]]
            first.append(len(sentences))
            count.append(len(parts))
            sentences.extend(parts)
        ids = torch.zeros(len(sentences), max(map(len, sentences)), dtype=torch.long)
        for row, sentence in enumerate(sentences):
            ids[row, : len(sentence)] = torch.tensor(sentence)
        last = torch.tensor([len(x) - 1 for x in sentences])
        return ids, last, torch.tensor(first), torch.tensor(count)

    class Reader(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(len(vocab) + 1, 32, padding_idx=0)
            self.gru = torch.nn.GRU(32, hidden_size, batch_first=True)
            self.head = torch.nn.Linear(hidden_size, 2)

        def forward(self, data, texts):
            ids, last, first, count = data
            rows = torch.cat([torch.arange(first[t], first[t] + count[t]) for t in texts.tolist()])
            owner = torch.repeat_interleave(torch.arange(len(texts)), count[texts])
            width = int(last[rows].max()) + 1  # trim padding columns
            states, _ = self.gru(self.embed(ids[rows, :width]))  # (sentences, words, hidden)
            per_sentence = self.head(states[torch.arange(len(rows)), last[rows]])
            return torch.zeros(len(texts), 2).index_add(0, owner, per_sentence)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        generator = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        model = Reader()
        optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
        train, y = encode(train_texts), torch.tensor(list(train_labels))
        for _ in range(epochs):
            for batch in torch.randperm(len(y), generator=generator).split(batch_size):
                loss = torch.nn.functional.cross_entropy(model(train, batch), y[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        model.eval()
        with torch.no_grad():
            predicted = model(encode(test_texts), torch.arange(len(test_texts))).argmax(-1)
        return float((predicted == torch.tensor(list(test_labels))).float().mean())
    finally:
        torch.set_num_threads(threads)
