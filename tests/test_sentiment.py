"""Sentiment sentences: deterministic, balanced, order-dependent (bag of words fails, a GRU reads them), files."""

from collections import Counter

import pytest

from tokcom.training.data.sentiment import (
    bag_of_words_accuracy,
    generate_imdb,
    generate_sentiment_splits,
    generate_sst2,
    imdb_features,
    order_aware_accuracy,
    sst2_features,
    tokenize,
    write_imdb,
    write_sst2_tsv,
)


def test_deterministic_balanced_and_in_the_hub_schemas():
    a, b, c = generate_sst2(51, seed=0), generate_sst2(51, seed=0), generate_sst2(51, seed=1)
    assert a["sentence"] == b["sentence"] and a["sentence"] != c["sentence"]
    assert a.features == sst2_features() and list(a["idx"]) == list(range(51))
    assert Counter(a["label"]) == {1: 26, 0: 25}
    reviews = generate_imdb(6, seed=0)
    assert reviews.features == imdb_features() and Counter(reviews["label"]) == {0: 3, 1: 3}
    assert min(len(tokenize(t)) for t in reviews["text"]) > 30  # long, several sentences
    splits = generate_sentiment_splits("sst2", 20, 5, 5, seed=0)
    assert splits["train"]["sentence"][:5] != splits["test"]["sentence"]
    assert str(splits["validation"].split) == "validation"
    with pytest.raises(ValueError, match="kind"):
        generate_sentiment_splits("yelp", 1, 1, 1)
    with pytest.raises(ValueError, match="num_sentences"):
        generate_sst2(-1)


def test_words_carry_no_label_on_their_own():
    """Every sentiment word and negator appears about as often in positive as in negative sentences."""
    ds = generate_sst2(4000, seed=2)
    by_word = {}
    for sentence, label in zip(ds["sentence"], ds["label"]):
        for w in set(tokenize(sentence)):
            by_word.setdefault(w, []).append(label)
    for word in ("good", "bad", "not", "hardly", "boring", "but", "although"):
        share = sum(by_word[word]) / len(by_word[word])
        assert 0.4 < share < 0.6, (word, share)


def test_bag_of_words_is_clearly_below_a_reader_of_order():
    train, test = generate_sst2(1000, seed=0), generate_sst2(400, seed=1)
    bow = bag_of_words_accuracy(train["sentence"], train["label"], test["sentence"], test["label"])
    gru = order_aware_accuracy(train["sentence"], train["label"], test["sentence"], test["label"])
    assert bow <= 0.65, bow
    assert gru >= 0.9 and gru - bow >= 0.25, (gru, bow)
    reviews, held_out = generate_imdb(300, seed=0), generate_imdb(100, seed=1)
    assert bag_of_words_accuracy(reviews["text"], reviews["label"], held_out["text"], held_out["label"]) <= 0.65


def test_files_round_trip_through_the_real_loaders(tmp_path):
    from tokcom.training.data.real_datasets import load_imdb, load_sst2

    ds = generate_sst2(7, seed=0)
    path = write_sst2_tsv(ds, tmp_path / "SST-2" / "train.tsv")
    assert path.read_text().splitlines()[0] == "sentence\tlabel"
    back = load_sst2(path)
    assert back["sentence"] == ds["sentence"] and back["label"] == ds["label"] and back.features == ds.features
    reviews = {"train": generate_imdb(4, seed=0), "test": generate_imdb(2, seed=1)}
    root = write_imdb(tmp_path / "aclImdb", reviews)
    files = sorted(p.name for p in (root / "train" / "pos").iterdir())
    assert len(files) == 2 and all(int(f.split("_")[1].split(".")[0]) >= 7 for f in files)
    loaded = load_imdb(root, "train")
    assert sorted(loaded["text"]) == sorted(reviews["train"]["text"]) and loaded.features == imdb_features()
    assert Counter(loaded["label"]) == Counter(reviews["train"]["label"])
