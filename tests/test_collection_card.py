"""MODEL_CARD.md's results block is generated from results/ and must match it."""

import json
import shutil

from tokcom.collection_card import BEGIN, END, REPO_ROOT, render_results, update_collection_card


def test_collection_card_matches_the_results_files():
    assert update_collection_card(REPO_ROOT / "MODEL_CARD.md", check=True) is False, "run `python -m tokcom.collection_card`"


def test_the_block_follows_the_results_files(tmp_path):
    shutil.copytree(REPO_ROOT / "results", tmp_path / "results")
    card = tmp_path / "MODEL_CARD.md"
    card.write_text(f"# card\n\n{BEGIN}\nstale\n{END}\n\nafter\n")
    path = tmp_path / "results" / "tokcom_avqa_default" / "evaluation.json"
    summary = json.loads(path.read_text())
    summary["evaluation"]["awgn"]["results"][-1]["accuracy"] = 0.9876
    path.write_text(json.dumps(summary))
    assert update_collection_card(card) is True
    text = card.read_text()
    assert "| 20 | 0.988 |" in text and "stale" not in text and text.endswith("after\n")
    assert update_collection_card(card, check=True) is False
    assert render_results(tmp_path / "results") in text
