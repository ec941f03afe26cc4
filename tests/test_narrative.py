"""The lesson's sentences: each number and direction follows the results it is given."""
import matplotlib
import numpy as np
import pandas as pd
import torch

from pystatsml_tl.runs import narrative, plots
from pystatsml_tl.training.loop import Evaluation

matplotlib.use("Agg")


def evaluation(targets, predictions) -> Evaluation:
    targets, predictions = torch.tensor(targets), torch.tensor(predictions)
    return Evaluation(1.0, float((targets == predictions).float().mean()), predictions, targets)


def test_the_cache_sentence_says_what_ran_through_the_backbone():
    assert narrative.cache_sentence(300, 300).startswith("all 300 images ran through the frozen backbone once")
    assert narrative.cache_sentence(0, 300).startswith("none of the 300 images ran through the backbone")
    assert narrative.cache_sentence(30, 300).startswith("30 of 300 images ran through the frozen backbone")


def test_confusions_name_the_classes_most_mixed_up_with_their_counts():
    test = evaluation([0, 0, 0, 0, 1, 1, 2, 2, 2], [0, 1, 1, 2, 1, 1, 2, 2, 0])
    sentence = narrative.confusion_sentence("m", test, ["cat", "dog", "fox"], top=2)
    assert sentence.startswith("m: 4 of 9 test images wrong; most often cat read as dog: 2 times (50 % of the cats)")
    assert "fox read as cat: 1 time (33 % of the foxs)" in sentence or "cat read as fox: 1 time " in sentence
    assert narrative.confusion_sentence("m", evaluation([0, 1], [0, 1]), ["a", "b"]) == "m: no test image wrong"


def test_curve_sentences_follow_the_bands_and_chance():
    curve = pd.DataFrame([
        {"setting": "p", "train_images": 30, "mean": 40.0, "ci_low": 30.0, "ci_high": 50.0},
        {"setting": "r", "train_images": 30, "mean": 12.0, "ci_low": 8.0, "ci_high": 16.0},
        {"setting": "p", "train_images": 100, "mean": 60.0, "ci_low": 50.0, "ci_high": 70.0},
        {"setting": "r", "train_images": 100, "mean": 55.0, "ci_low": 45.0, "ci_high": 65.0},
    ])
    small, large = narrative.curve_sentences(curve, 0.1, "p", "r")
    assert small.startswith("30 images: p 40.0 % [30.0, 50.0], r 12.0 % [8.0, 16.0]: p lies above r, the bands apart")
    assert small.endswith("above chance (10 %): p; not above it: r")
    assert "the bands of p and r overlap" in large and large.endswith("above chance (10 %): p, r")
    flipped = curve.assign(setting=curve.setting.map({"p": "r", "r": "p"}))
    assert "r lies above p, the bands apart" in narrative.curve_sentences(flipped, 0.1, "p", "r")[0]


def test_probe_and_filter_sentences_print_their_numbers():
    assert narrative.probe_sentence(0.9, 0.85, 4) == (
        "linear probe on the frozen features: 90.0 % with the pretrained weights, 85.0 % with random ones (one draw), "
        "+5.0 points; chance is 25.0 %")
    assert narrative.filters_sentence(0.0123, {"a": 0.5}).startswith("fine-tuning moved the first layer by 1.2 %")


def test_class_colours_are_distinct_and_filter_tiles_square():
    colours = np.array(plots.class_palette(10))
    distances = np.linalg.norm(colours[:, None] - colours[None], axis=-1) + np.eye(10)
    assert distances.min() > 0.15  # tab10: no two classes share a hue
    rng = np.random.default_rng(0)
    fig = plots.first_layer_filters({"a": rng.normal(size=(64, 3, 7, 7)), "b": rng.normal(size=(64, 3, 7, 7))})
    fig.canvas.draw()  # the axes take their aspect when drawn
    boxes = [ax.get_window_extent() for ax in fig.axes if ax.images]
    assert len(boxes) == 128 and all(abs(box.width - box.height) < 0.5 for box in boxes)
