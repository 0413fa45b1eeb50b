"""CLEVR-format questions about shapes-world scenes, their functional programs, and a program executor.

Families (`question_family_index` is the position in `QUESTION_FAMILIES`): exist, count, query colour / shape /
size / material, integer comparison (more / fewer / equal), same-attribute comparison, and spatial relations
(exist / count relative to a uniquely described object). Every question carries a `program` in CLEVR's
format (`[{"function", "inputs", "value_inputs"}, ...]`); `execute_program` runs it on a scene graph in CLEVR's
scenes format, so a reader that sees the perfect scene graph answers every question.

Answers are balanced per family: each question picks, among the answers its scene allows, the one its family
has given least so far; then a filter specificity (1-3 attributes) uniformly, then a candidate. A model that
reads only the question therefore does poorly (`question_only_accuracy` measures it).

>>> from tokcom.training.data.shapes_render import generate_shapes_scenes
>>> from tokcom.training.data.shapes_world import scene_graphs
>>> scenes = generate_shapes_scenes(4, seed=0, render=False)
>>> graphs = scene_graphs(scenes)
>>> qs = generate_questions(scenes, graphs, seed=0, questions_per_image=3)
>>> all(execute_program(q["program"], graphs[q["image_index"]]) == q["answer"] for q in qs)
True
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict

import numpy as np

from .shapes_render import COLORS, MATERIALS, SHAPES, SIZES
from .world import check_count, seed_sequence

__all__ = ["QUESTION_FAMILIES", "RELATIONS", "execute_program", "generate_questions", "question_only_accuracy"]

QUESTION_FAMILIES = (
    "exist", "count", "query_color", "query_shape", "query_size", "query_material",
    "compare_more", "compare_fewer", "compare_equal", "same_attribute", "relate_exist", "relate_count",
)  # fmt: skip
RELATIONS = ("left", "right", "front", "behind")
_ATTRS = ("size", "color", "material", "shape")  # CLEVR's word order: <Z> <C> <M> <S>
_VALUES = (SIZES, COLORS, MATERIALS, SHAPES)
_REL_WORDS = {"left": "left of", "right": "right of", "front": "in front of", "behind": "behind"}
_PLURAL = {"cube": "cubes", "sphere": "spheres", "cylinder": "cylinders"}


def _all_filters() -> np.ndarray:
    """(F, 4) attribute indices (-1 = any) of every filter naming 0-3 attributes."""
    rows = []
    for choice in itertools.product(*[range(-1, len(v)) for v in _VALUES]):
        if sum(c >= 0 for c in choice) <= 3:
            rows.append(choice)
    return np.array(rows, np.int64)


_FILTERS = _all_filters()
_SAMPLES = 128  # candidates drawn per scene for the pair families (compare, same_attribute, relate)
_SPECIFICITY = (_FILTERS >= 0).sum(1)


def _phrase(f, plural=False) -> str:
    words = [_VALUES[a][f[a]] for a in range(3) if f[a] >= 0]
    noun = SHAPES[f[3]] if f[3] >= 0 else "thing"
    noun = (_PLURAL.get(noun, noun + "s")) if plural else noun
    return " ".join([*words, noun])


def _filter_nodes(program: list, f, start: int) -> int:
    """Append filter nodes for `f` after node `start`; return the last node's index."""
    last = start
    for a in range(4):
        if f[a] >= 0:
            program.append({"function": f"filter_{_ATTRS[a]}", "inputs": [last], "value_inputs": [_VALUES[a][f[a]]]})
            last = len(program) - 1
    return last


def _select(program: list, f) -> int:
    program.append({"function": "scene", "inputs": [], "value_inputs": []})
    return _filter_nodes(program, f, len(program) - 1)


def _unique(program: list, f) -> int:
    last = _select(program, f)
    program.append({"function": "unique", "inputs": [last], "value_inputs": []})
    return len(program) - 1


def _relations(graph: dict) -> dict:
    return graph["relationships"]


def _matches(attrs: np.ndarray) -> np.ndarray:
    """(F, objects) bool: which objects each filter selects."""
    return np.all((_FILTERS[:, None, :] < 0) | (_FILTERS[:, None, :] == attrs[None]), axis=2)


def _candidates(family: str, attrs: np.ndarray, graph: dict, rng, match: np.ndarray) -> list[tuple]:
    """(answer, specificity, build) candidates of `family` for one scene; `attrs` is the scene's
    (objects, 4) attribute indices in `_ATTRS` order; `build()` returns (question text, program)."""
    counts = match.sum(1)
    unique = np.flatnonzero(counts == 1)
    out = []
    if family in ("exist", "count"):
        def build(f=None):
            program = []
            program.append({"function": family, "inputs": [_select(program, f)], "value_inputs": []})
            if family == "exist":
                text = (f"Are there any {_phrase(f, True)}?", f"Is there a {_phrase(f)}?")[int(rng.integers(2))]
            else:
                text = (f"How many {_phrase(f, True)} are there?", f"What number of {_phrase(f, True)} are there?")
                text = text[int(rng.integers(2))]
            return text, program

        answers = np.where(counts > 0, "yes", "no") if family == "exist" else counts.astype(str)
        for i in range(len(_FILTERS)):
            if family == "exist" and _SPECIFICITY[i] == 0:
                continue  # "Are there any things?" is always yes
            out.append((str(answers[i]), int(_SPECIFICITY[i]), lambda f=_FILTERS[i]: build(f)))
    elif family.startswith("query_"):
        a = _ATTRS.index(family[6:])
        for i in unique:
            f = _FILTERS[i]
            if f[a] >= 0:
                continue
            obj = int(np.flatnonzero(match[i])[0])

            def build(f=f):
                program = []
                program.append({"function": family, "inputs": [_unique(program, f)], "value_inputs": []})
                text = {
                    "color": f"What color is the {_phrase(f)}?", "shape": f"What shape is the {_phrase(f)}?",
                    "size": f"How big is the {_phrase(f)}?", "material": f"What material is the {_phrase(f)} made of?",
                }[_ATTRS[a]]  # fmt: skip
                return text, program

            out.append((_VALUES[a][attrs[obj, a]], int(_SPECIFICITY[i]), build))
    elif family.startswith("compare_"):
        usable = np.flatnonzero(_SPECIFICITY >= 1)
        pairs = rng.choice(usable, size=(_SAMPLES, 2))
        for i, j in pairs[pairs[:, 0] != pairs[:, 1]].tolist():
            op = {"compare_more": "greater_than", "compare_fewer": "less_than", "compare_equal": "equal_integer"}[family]

            def build(f1=_FILTERS[i], f2=_FILTERS[j], op=op):
                program = []
                program.append({"function": "count", "inputs": [_select(program, f1)], "value_inputs": []})
                c1 = len(program) - 1
                program.append({"function": "count", "inputs": [_select(program, f2)], "value_inputs": []})
                program.append({"function": op, "inputs": [c1, len(program) - 1], "value_inputs": []})
                a, b = _phrase(f1, True), _phrase(f2, True)
                text = {"compare_more": f"Are there more {a} than {b}?", "compare_fewer": f"Are there fewer {a} than {b}?",
                        "compare_equal": f"Are there the same number of {a} and {b}?"}[family]  # fmt: skip
                return text, program

            truth = {"greater_than": counts[i] > counts[j], "less_than": counts[i] < counts[j],
                     "equal_integer": counts[i] == counts[j]}[op]  # fmt: skip
            out.append(("yes" if truth else "no", int(max(_SPECIFICITY[i], _SPECIFICITY[j])), build))
    elif family == "same_attribute":
        if len(unique) < 2:
            return out
        owner = match.argmax(1)  # the object a unique filter names
        draws = np.stack([rng.choice(unique, size=_SAMPLES), rng.choice(unique, size=_SAMPLES),
                          rng.integers(4, size=_SAMPLES)], 1)  # fmt: skip
        for i, j, a in draws.tolist():
            o1, o2 = int(owner[i]), int(owner[j])
            if o1 != o2 and _FILTERS[i][a] < 0 and _FILTERS[j][a] < 0:

                def build(f1=_FILTERS[i], f2=_FILTERS[j], name=_ATTRS[a]):
                    program = []
                    program.append({"function": f"query_{name}", "inputs": [_unique(program, f1)], "value_inputs": []})
                    q1 = len(program) - 1
                    program.append({"function": f"query_{name}", "inputs": [_unique(program, f2)], "value_inputs": []})
                    program.append({"function": f"equal_{name}", "inputs": [q1, len(program) - 1], "value_inputs": []})
                    return f"Does the {_phrase(f1)} have the same {name} as the {_phrase(f2)}?", program

                answer = "yes" if attrs[o1, a] == attrs[o2, a] else "no"
                out.append((answer, int(max(_SPECIFICITY[i], _SPECIFICITY[j])), build))
    elif family in ("relate_exist", "relate_count"):
        rels = _relations(graph)
        if len(unique) == 0:
            return out
        owner = match.argmax(1)
        draws = np.stack([rng.choice(unique, size=_SAMPLES), rng.integers(len(_FILTERS), size=_SAMPLES),
                          rng.integers(4, size=_SAMPLES)], 1)  # fmt: skip
        for i, j, r in draws.tolist():
            rel, anchor = RELATIONS[r], int(owner[i])
            hit = int(match[j][rels[rel][anchor]].sum())

            def build(anchor=_FILTERS[i], f=_FILTERS[j], rel=rel):
                program = []
                program.append({"function": "relate", "inputs": [_unique(program, anchor)], "value_inputs": [rel]})
                last = _filter_nodes(program, f, len(program) - 1)
                program.append({"function": family[7:], "inputs": [last], "value_inputs": []})
                where, what = _REL_WORDS[rel], _phrase(f, True)
                if family == "relate_exist":
                    return f"Are there any {what} {where} the {_phrase(anchor)}?", program
                return f"How many {what} are {where} the {_phrase(anchor)}?", program

            answer = ("yes" if hit else "no") if family == "relate_exist" else str(hit)
            out.append((answer, int(max(_SPECIFICITY[i], _SPECIFICITY[j])), build))
    return out


def generate_questions(scenes, graphs: list[dict], seed=0, questions_per_image: int = 10, split: str = "train",
                       question_index_start: int = 0) -> list[dict]:  # fmt: skip
    """CLEVR-format question dicts for every scene (deterministic by `seed`).

    Each dict has `image_index`, `image_filename`, `question_index`, `question`, `answer`,
    `question_family_index`, `split` and `program`. `graphs` are the scenes' CLEVR scene graphs
    (`shapes_world.scene_graphs`), whose `image_index`/`image_filename` the questions copy.
    """
    questions_per_image = check_count("questions_per_image", questions_per_image, 1)
    rng = np.random.default_rng(seed_sequence(seed))
    given = defaultdict(Counter)  # family -> answer -> times given so far
    out = []
    for s, graph in enumerate(graphs):
        attrs = np.stack([scenes.size[s], scenes.color[s], scenes.material[s], scenes.shape[s]], 1)[: scenes.num_objects[s]]
        match = _matches(attrs)
        families = [int(f) for f in rng.permutation(len(QUESTION_FAMILIES))]
        asked = 0
        for family in itertools.islice(itertools.cycle(families), 3 * len(families)):
            if asked == questions_per_image:
                break
            candidates = _candidates(QUESTION_FAMILIES[family], attrs, graph, rng, match)
            if not candidates:
                continue
            by_answer = defaultdict(list)
            for c in candidates:
                by_answer[c[0]].append(c)
            fewest = min(given[family][a] for a in by_answer)
            options = sorted(a for a in by_answer if given[family][a] == fewest)
            answer = options[int(rng.integers(len(options)))]
            levels = sorted({c[1] for c in by_answer[answer]})
            level = levels[int(rng.integers(len(levels)))]
            pool = [c for c in by_answer[answer] if c[1] == level]
            text, program = pool[int(rng.integers(len(pool)))][2]()
            given[family][answer] += 1
            out.append({
                "image_index": graph["image_index"], "image_filename": graph["image_filename"],
                "question_index": question_index_start + len(out), "question": str(text), "answer": answer,
                "question_family_index": family, "split": split, "program": program,
            })  # fmt: skip
            asked += 1
    return out


def execute_program(program: list[dict], scene: dict) -> str:
    """Run a CLEVR program on a CLEVR scene graph -> the answer string ("yes", "3", "red", ...).

    >>> scene = {"objects": [{"shape": "cube", "color": "red", "size": "large", "material": "metal"}],
    ...          "relationships": {r: [[]] for r in ("left", "right", "front", "behind")}}
    >>> execute_program([{"function": "scene", "inputs": [], "value_inputs": []},
    ...                  {"function": "count", "inputs": [0], "value_inputs": []}], scene)
    '1'
    """
    objects, values = scene["objects"], []
    for node in program:
        fn, args, val = node["function"], [values[i] for i in node["inputs"]], node.get("value_inputs", [])
        if fn == "scene":
            out = list(range(len(objects)))
        elif fn.startswith("filter_"):
            out = [o for o in args[0] if objects[o][fn[7:]] == val[0]]
        elif fn == "unique":
            if len(args[0]) != 1:
                raise ValueError(f"`unique` got {len(args[0])} objects; the program does not fit this scene.")
            out = args[0][0]
        elif fn == "relate":
            out = list(scene["relationships"][val[0]][args[0]])
        elif fn == "exist":
            out = "yes" if args[0] else "no"
        elif fn == "count":
            out = len(args[0])
        elif fn.startswith("query_"):
            out = objects[args[0]][fn[6:]]
        elif fn.startswith("equal_") and fn != "equal_integer":
            out = "yes" if args[0] == args[1] else "no"
        elif fn in ("greater_than", "less_than", "equal_integer"):
            a, b = args
            out = "yes" if {"greater_than": a > b, "less_than": a < b, "equal_integer": a == b}[fn] else "no"
        else:
            raise ValueError(f"Unknown program function {fn!r}.")
        values.append(out)
    answer = values[-1]
    return str(answer)


def question_only_accuracy(train: list[dict], test: list[dict]) -> dict:
    """Accuracy of two question-only baselines per family, fitted on `train` questions and scored on `test`:
    `family_prior` answers each family's most frequent training answer; `question_prior` answers the most
    frequent training answer of the exact question text (the family prior when the text is new).

    Returns {"family_prior": {family: acc, ..., "overall": acc}, "question_prior": {...}}.
    """
    by_family, by_text = defaultdict(Counter), defaultdict(Counter)
    for q in train:
        by_family[q["question_family_index"]][q["answer"]] += 1
        by_text[q["question"]][q["answer"]] += 1
    result = {}
    for name in ("family_prior", "question_prior"):
        hits = defaultdict(list)
        for q in test:
            prior = by_family[q["question_family_index"]]
            if name == "question_prior" and q["question"] in by_text:
                prior = by_text[q["question"]]
            guess = prior.most_common(1)[0][0] if prior else ""
            hits[QUESTION_FAMILIES[q["question_family_index"]]].append(guess == q["answer"])
        accs = {family: float(np.mean(h)) for family, h in sorted(hits.items())}
        accs["overall"] = float(np.mean([x for h in hits.values() for x in h])) if hits else float("nan")
        result[name] = accs
    return result
