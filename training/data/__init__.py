"""Data generators and loaders: synthetic worlds mirroring the real datasets' schemas, and
readers for the real files.

>>> from tokcom.training.data import generate_avqa, ANSWER_VOCAB
>>> generate_avqa(2, seed=0)[0]["anser"] in ANSWER_VOCAB
True
"""

from .music_avqa import load_music_avqa, load_valor_captions, read_audio, read_frames
from .real_datasets import (
    decode_audio,
    load_clevr,
    load_coco_captions,
    load_imdb,
    load_librispeech,
    load_sst2,
    load_vqav2,
    vqav2_features,
)
from .sentiment import (
    bag_of_words_accuracy,
    generate_imdb,
    generate_sentiment_splits,
    generate_sst2,
    imdb_features,
    order_aware_accuracy,
    sst2_features,
    write_imdb,
    write_sst2_tsv,
)
from .spoken import SpeechCache, generate_spoken, librispeech_features, spoken_sentences, write_spoken_librispeech
from .probes import LogisticProbe, RidgeProbe, image_statistics
from .shapes_questions import QUESTION_FAMILIES, execute_program, question_only_accuracy
from .shapes_questions import generate_questions as generate_clevr_questions
from .shapes_render import ShapesScenes, ShapesWorldConfig, generate_shapes_scenes, low_res_view
from .shapes_world import (
    clevr_features,
    coco_caption_features,
    coco_captions,
    describe_scene as describe_shapes_scene,
    generate_clevr,
    generate_clevr_splits,
    generate_shapes_captions,
    generate_shapes_world,
    scene_graph_accuracy,
    scene_graphs,
    write_clevr,
)
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
    # shapes world (CLEVR schema), probes
    "LogisticProbe",
    "QUESTION_FAMILIES",
    "RidgeProbe",
    "ShapesScenes",
    "ShapesWorldConfig",
    "clevr_features",
    "coco_caption_features",
    "coco_captions",
    "describe_shapes_scene",
    "execute_program",
    "generate_clevr",
    "generate_clevr_splits",
    "generate_clevr_questions",
    "generate_shapes_captions",
    "generate_shapes_scenes",
    "generate_shapes_world",
    "image_statistics",
    "low_res_view",
    "question_only_accuracy",
    "scene_graph_accuracy",
    "scene_graphs",
    "write_clevr",
    # sentiment, spoken, real-dataset loaders
    "SpeechCache",
    "bag_of_words_accuracy",
    "decode_audio",
    "generate_imdb",
    "generate_sentiment_splits",
    "generate_spoken",
    "generate_sst2",
    "imdb_features",
    "librispeech_features",
    "load_clevr",
    "load_coco_captions",
    "load_imdb",
    "load_librispeech",
    "load_sst2",
    "load_vqav2",
    "order_aware_accuracy",
    "spoken_sentences",
    "sst2_features",
    "vqav2_features",
    "write_imdb",
    "write_spoken_librispeech",
    "write_sst2_tsv",
]
