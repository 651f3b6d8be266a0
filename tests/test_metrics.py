import math

import numpy as np
import pytest

from simrag.metrics import (
    adjust_p_values,
    answer_quality,
    bootstrap_ci,
    context_relevance,
    cosine,
    evidence_recall,
    groundedness,
    is_refusal,
    length_score,
    paired_comparison,
    recall_at_k,
    reciprocal_rank,
    rouge_l,
    sign_flip_p_value,
    token_f1,
)


def test_context_relevance_is_the_mean_score():
    assert context_relevance([0.2, 0.4, 0.9]) == pytest.approx(0.5)
    assert context_relevance([]) == 0.0


@pytest.mark.parametrize(
    "answer,score", [("", 0.0), ("   ", 0.0), ("short one", 0.5), ("x" * 20, 1.0), ("x" * 500, 1.0), ("x" * 501, 0.7)]
)
def test_length_score(answer, score):
    assert length_score(answer) == score


def test_answer_quality_by_hand():
    # The paper's tokens: whitespace words longer than 3 characters, lowercased, punctuation kept.
    question = "What does Docker build cache reuse?"  # what, does, docker, build, cache, reuse?
    context = "The Docker build cache reuses unchanged layers between builds."
    answer = "Docker reuses unchanged layers from the cache."  # docker, reuses, unchanged, layers, from, cache.
    # length: 46 characters -> 1.0
    # context overlap: {docker, reuses, unchanged, layers} ("cache." keeps its period) -> 4 / max(6, 5)
    # question overlap: {docker} ("cache" is "cache." in the answer) -> 1 / max(6, 3)
    # refusal: none -> 1
    assert answer_quality(answer, context, question) == pytest.approx((1 + 4 / 6 + 1 / 6 + 1) / 4)


def test_answer_quality_edge_cases():
    # empty: length 0, both overlaps 0 (an empty side), not a refusal -> 1: 0.25
    assert answer_quality("", "any context", "any question") == 0.25
    assert answer_quality("   ", "any context", "any question") == 0.25
    # short refusal: length 0.5; "don't", "know." not in the context -> 0; no question word -> 0; refusal -> 0
    assert answer_quality("I don't know.", "pods and nodes", "What is Kubernetes?") == pytest.approx(0.5 / 4)
    # few words: the floors (5 answer words, 3 question words) keep one lucky word from scoring 1
    assert answer_quality("Pods run", "Pods run containers.", "Pods?") == pytest.approx((0.5 + 1 / 5 + 0 + 1) / 4)
    # punctuation is kept: "pods." and "pods" differ, so only "many" of 3 question words; empty context: 0
    assert answer_quality("Many pods.", "", "How many pods") == pytest.approx((0.5 + 0 + 1 / 3 + 1) / 4)
    # over 500 characters: 0.7; every word in the context -> 1; one question word of 3 -> 1/3
    long = "containers " * 50
    assert answer_quality(long, "containers", "Which containers run?") == pytest.approx((0.7 + 1 / 5 + 1 / 3 + 1) / 4)


@pytest.mark.parametrize(
    "text,refused",
    [
        ("I don't know the answer.", True),
        ("I’m unable to say.", True),
        ("I'm sorry, that is not in the passages.", True),
        ("It is unclear from the context.", True),
        ("The context does not contain it.", False),  # not one of the paper's phrases
        ("Use docker build.", False),
    ],
)
def test_refusal_detection(text, refused):
    assert is_refusal(text) is refused


def test_evidence_recall_and_cosine_by_hand():
    evidence = "The event loop keeps only weak references to tasks."  # event, loop, keeps, weak, references, tasks
    assert evidence_recall("Tasks are held by weak references in the loop.", evidence) == pytest.approx(4 / 6)
    assert evidence_recall("", evidence) == 0.0 and evidence_recall("anything", "the of a") == 0.0
    assert cosine(np.array([1.0, 0.0]), np.array([1.0, 1.0])) == pytest.approx(2**-0.5)
    assert cosine(np.zeros(2), np.array([1.0, 1.0])) == 0.0


def test_token_f1_by_hand():
    # normalised: [cat, sat, on, mat] vs [cat, is, on, mat] -> 3 common, P = R = 3/4
    assert token_f1("The cat sat on the mat.", "A cat is on the mat") == pytest.approx(0.75)
    assert token_f1("", "") == 1.0 and token_f1("x", "") == 0.0 and token_f1("dog", "cat") == 0.0


def test_rouge_l_by_hand():
    # [police, killed, gunman] vs [police, kill, gunman]: LCS 2, P = R = 2/3
    assert rouge_l("police killed the gunman", "the police kill the gunman") == pytest.approx(2 / 3)
    # order matters: LCS of [a, b, c, d] and [d, c, b, a] is 1
    assert rouge_l("w x y z", "z y x w") == pytest.approx(0.25)
    assert rouge_l("same words here", "same words here") == 1.0


def test_recall_and_reciprocal_rank():
    docs = ["a.md", "b.md", "a.md", "c.md"]
    assert recall_at_k(docs, "b.md", 1) == 0.0 and recall_at_k(docs, "b.md", 2) == 1.0
    assert reciprocal_rank(docs, "b.md") == 0.5 and reciprocal_rank(docs, "a.md") == 1.0
    assert reciprocal_rank(docs, "z.md") == 0.0 and recall_at_k(docs, "z.md", 5) == 0.0


def test_groundedness():
    # answer words {docker, images, built, from, layers}; context has docker, images, layers
    assert groundedness("Docker images are built from layers", "docker images have layers") == pytest.approx(3 / 5)
    assert groundedness("ok", "anything") == 0.0


def test_bootstrap_ci_brackets_the_mean_and_shrinks_with_n():
    rng = np.random.default_rng(1)
    small = bootstrap_ci(rng.normal(0.5, 0.1, 20))
    large = bootstrap_ci(rng.normal(0.5, 0.1, 2000))
    assert small["ci_low"] < small["mean"] < small["ci_high"] and small["n"] == 20
    assert (large["ci_high"] - large["ci_low"]) < (small["ci_high"] - small["ci_low"]) / 5
    assert bootstrap_ci([0.3] * 5) == {"mean": 0.3, "ci_low": pytest.approx(0.3), "ci_high": pytest.approx(0.3), "n": 5}
    assert math.isnan(bootstrap_ci([])["mean"])


def test_paired_comparison_detects_a_shift_and_not_noise():
    rng = np.random.default_rng(2)
    base = rng.uniform(0, 1, 60)
    better = paired_comparison(base + 0.1 + rng.normal(0, 0.02, 60), base)
    assert better["diff"] == pytest.approx(0.1, abs=0.02) and better["ci_low"] > 0 and better["p_value"] < 1e-3
    noise = paired_comparison(base + rng.normal(0, 0.05, 60), base)
    assert noise["ci_low"] < 0 < noise["ci_high"] and noise["p_value"] > 0.05  # the CI and the test agree
    same = paired_comparison(base, base)
    assert same["diff"] == 0.0 and same["p_value"] == 1.0
    with pytest.raises(ValueError, match="differ in length"):
        paired_comparison([1.0], [1.0, 2.0])


def test_sign_flip_test_is_exact_on_few_pairs():
    # differences 1, 2, 3: of the 8 sign patterns only +++ and --- reach |mean| 2 -> p = 2/8
    assert sign_flip_p_value([1.0, 2.0, 3.0]) == pytest.approx(0.25)
    assert sign_flip_p_value([0.0, 0.0]) == 1.0


def test_holm_and_bh_adjustments():
    from scipy.stats import false_discovery_control

    p = [0.01, 0.04, 0.03, 0.005]
    # Holm by hand: sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 -> 0.02, 0.03, 0.06, 0.04 -> monotone 0.06
    assert adjust_p_values(p, "holm") == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert adjust_p_values(p, "bh") == pytest.approx(false_discovery_control(p, method="bh").tolist())
    # BH by hand: 0.005*4/1 = 0.02, 0.01*4/2 = 0.02, 0.03*4/3 = 0.04, 0.04*4/4 = 0.04
    assert adjust_p_values(p, "bh") == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert adjust_p_values(p, "none") == p and adjust_p_values([], "holm") == []
    assert adjust_p_values([0.9, 0.8], "holm") == pytest.approx([1.0, 1.0])
