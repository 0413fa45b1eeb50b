"""Data generators and loaders: synthetic worlds mirroring the real datasets' schemas, and
readers for the real files.

>>> from tokcom.training.data import generate_avqa, ANSWER_VOCAB
>>> generate_avqa(2, seed=0)[0]["anser"] in ANSWER_VOCAB
True
"""

from .music_avqa import load_music_avqa, load_valor_captions, read_audio, read_frames
from .perception_baseline import QuestionOnlyBaseline, answer_from_media, read_scene
from .synthetic_avqa import (
    ANSWER_VOCAB,
    INSTRUMENTS,
    POSITIONS,
    QUESTION_TEMPLATES,
    SyntheticAVQAConfig,
    SyntheticScenes,
    answer_question,
    avqa_features,
    caption_features,
    describe_scene,
    generate_avqa,
    generate_avqa_splits,
    generate_questions,
    generate_scenes,
    generate_split,
    generate_valor_captions,
    render_question,
)

__all__ = [
    "ANSWER_VOCAB",
    "INSTRUMENTS",
    "POSITIONS",
    "QUESTION_TEMPLATES",
    "QuestionOnlyBaseline",
    "SyntheticAVQAConfig",
    "SyntheticScenes",
    "answer_from_media",
    "answer_question",
    "avqa_features",
    "caption_features",
    "describe_scene",
    "generate_avqa",
    "generate_avqa_splits",
    "generate_questions",
    "generate_scenes",
    "generate_split",
    "generate_valor_captions",
    "load_music_avqa",
    "load_valor_captions",
    "read_audio",
    "read_frames",
    "read_scene",
    "render_question",
]
