"""Retriever adaptation: pairs from kept QA, hard negatives, a few MNRL steps, the stage and a re-embedded index."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from simrag.config import RetrieverParams, parse_params
from simrag.embedding import load_embedder
from simrag.errors import ConfigError
from simrag.jsonio import read_json, write_jsonl
from simrag.records import read_chunks
from simrag.retrieval import Retriever
from simrag.retriever_training import (
    RetrieverPair,
    drop_attention_dropout,
    mine_hard_negatives,
    ranking,
    split_pairs,
    train_embedder,
    training_pairs,
)
from tests.conftest import TOPICS

# A question in words no topic uses: the untuned embedder cannot know it belongs to the cron chunk.
PLANTED = "What does the Zephyr quokka ledger hold?"
PLANTED_TOPIC = "cron-schedules"


def _corpus(topic_index: Path) -> dict[str, dict]:
    return {c["id"]: c for c in read_chunks(topic_index.parent / "chunks.jsonl")}


def _chunk_of(corpus: dict[str, dict], topic: str) -> dict:
    return next(c for c in corpus.values() if c["doc"].endswith(f"{topic}.md"))


def _records(corpus: dict[str, dict], planted_copies: int = 0) -> list[dict]:
    records = []
    for topic, (text, question) in TOPICS.items():
        chunk = _chunk_of(corpus, topic)
        records.append({"question": question, "answer": text.split(",")[0], "chunk_id": chunk["id"], "verdict": "kept"})
    for i in range(planted_copies):  # the same pair phrased with a suffix, so it is not a duplicate question
        chunk = _chunk_of(corpus, PLANTED_TOPIC)
        records.append({"question": f"{PLANTED} ({i})", "answer": "", "chunk_id": chunk["id"], "verdict": "kept"})
    return records


def test_training_pairs_take_kept_records_and_skip_the_unusable(topic_index: Path) -> None:
    corpus = _corpus(topic_index)
    records = _records(corpus)[:3]
    records += [
        {**records[0]},  # the same question again
        {**records[1], "verdict": "not_retrieved"},
        {"question": "Where did it go?", "answer": "x", "chunk_id": "gone.md#0", "verdict": "kept"},
    ]
    pairs, skipped = training_pairs(records, corpus)
    assert [p.question for p in pairs] == [r["question"] for r in records[:3]]
    assert pairs[0].positive == corpus[records[0]["chunk_id"]]["text"]
    assert skipped == {"duplicate_question": 1, "chunk_not_in_corpus": 1}


def test_hard_negatives_come_from_other_documents_without_the_answer(topic_index: Path) -> None:
    corpus = _corpus(topic_index)
    pairs, _ = training_pairs(_records(corpus), corpus)
    retriever = Retriever(topic_index, top_k=5, dtype="fp32")
    counts = mine_hard_negatives(pairs, retriever, per_pair=2, depth=5)
    assert counts["hard_negatives"] == 2 * len(pairs) and counts["skipped_same_doc"] >= len(pairs) // 2
    for pair in pairs:
        assert len(pair.negatives) == 2 and pair.positive not in pair.negatives
    # A hit that holds the pair's answer is a false negative: never used.
    docker = next(p for p in pairs if "Docker" in p.question)
    docker.answer = "layers"
    mine_hard_negatives([docker], retriever, per_pair=3, depth=20)
    assert not any("layers" in text.lower() for text in docker.negatives)


def test_split_holds_out_at_most_a_quarter() -> None:
    pairs = [RetrieverPair(f"q{i}", "", f"c{i}", f"d{i}", f"t{i}") for i in range(10)]
    train, val = split_pairs(pairs, val_size=8, seed=0)
    assert len(val) == 2 and len(train) == 8 and not {p.question for p in val} & {p.question for p in train}
    assert split_pairs(pairs, 8, 0) == (train, val)


def test_attention_dropout_is_switched_off_and_hidden_dropout_kept() -> None:
    import torch

    model = load_embedder("default", "cpu", "fp32")
    assert drop_attention_dropout(model) == 6  # MiniLM-L6: one per layer
    probs = [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    assert 0.0 in probs and 0.1 in probs


def test_a_few_steps_rank_the_planted_question_higher(topic_index: Path, tmp_path: Path) -> None:
    corpus = _corpus(topic_index)
    pairs, _ = training_pairs(_records(corpus, planted_copies=4), corpus)
    planted = [p for p in pairs if p.question.startswith(PLANTED)]
    probe = [RetrieverPair(PLANTED, "", planted[0].chunk_id, planted[0].doc, planted[0].positive)]
    others = [c["text"] for c in corpus.values() if c["id"] != planted[0].chunk_id]
    before = ranking(load_embedder("default", "cpu", "fp32"), probe, others)
    assert before["recall_at_1"] == 0.0, "the planted question must not find its chunk before tuning"

    params = RetrieverParams(learning_rate=1e-4, batch_size=8, epochs=4, warmup_ratio=0.0, hard_negatives=0)
    figures = train_embedder(
        "default", pairs, probe, others, params, 128, tmp_path / "embedder", tmp_path / "plots", title="test"
    )
    after = figures["validation_after"]
    assert figures["validation_before"]["mrr"] == before["mrr"]
    assert after["mrr"] > before["mrr"] and after["recall_at_1"] == 1.0
    assert figures["steps"] == 12 and figures["train_loss_final"] < figures["train_loss_first"]
    assert (tmp_path / "plots" / "curves.png").is_file()
    # The saved folder is a sentence-transformers model that ranks the same way.
    assert ranking(load_embedder(str(tmp_path / "embedder"), "cpu", "fp32"), probe, others)["recall_at_1"] == 1.0


def test_stage_tunes_the_embedder_and_the_round_index_uses_it(topic_index: Path, tmp_path: Path) -> None:
    from stages.index import main as index_main
    from stages.train_retriever import main

    corpus = _corpus(topic_index)
    write_jsonl(tmp_path / "qa" / "r1.jsonl", _records(corpus, planted_copies=2))
    index_dir = tmp_path / "data" / "index"
    shutil.copytree(topic_index, index_dir)
    raw = {
        "index": {"dtype": "fp32", "batch_size": 16},
        "rounds": {"r1": {"from": "stage1", "index": str(index_dir)}},
        "retriever": {"rounds": {"r1": str(index_dir)}, "batch_size": 8, "val_size": 4, "val_distractors": 5},
    }
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(raw))
    chunks = topic_index.parent / "chunks.jsonl"
    args = ["--round", "r1", "--params", str(params), "--chunks", str(chunks), "--qa", str(tmp_path / "qa")]
    args += ["--models", str(tmp_path / "models"), "--plots", str(tmp_path / "plots")]
    args += ["--metrics", str(tmp_path / "metrics")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    figures = read_json(tmp_path / "metrics" / "r1.json")
    assert figures["from"] == "default" and figures["index"] == str(index_dir)
    assert figures["pairs"] == {"train": 18, "validation": 4, "random_negatives": 0}
    assert figures["mining"]["hard_negatives"] == 22 and 9 <= figures["validation_after"]["candidates"] <= 13

    tuned = tmp_path / "models" / "embedder_r1"
    new_index = tmp_path / "index_r1"
    args = ["--params", str(params), "--chunks", str(chunks), "--embedder", str(tuned), "--out", str(new_index)]
    result = CliRunner().invoke(index_main, [*args, "--metrics", str(tmp_path / "reindex.json")])
    assert result.exit_code == 0, result.output
    retriever = Retriever(new_index, dtype="fp32")
    assert retriever.embedder == str(tuned) and len(retriever) == len(corpus)

    unknown = CliRunner().invoke(main, ["--round", "r2", *args[:2]])
    assert unknown.exit_code == 1 and "not in retriever.rounds" in unknown.output


def test_too_few_kept_pairs_stop_with_the_knobs_named(topic_index: Path, tmp_path: Path) -> None:
    from stages.train_retriever import main

    corpus = _corpus(topic_index)
    write_jsonl(tmp_path / "qa" / "r1.jsonl", _records(corpus)[:5])
    params = tmp_path / "params.yaml"
    params.write_text(
        yaml.safe_dump({"rounds": {"r1": {"from": "stage1"}}, "retriever": {"rounds": {"r1": "data/index"}}})
    )
    chunks = topic_index.parent / "chunks.jsonl"
    args = ["--round", "r1", "--params", str(params), "--chunks", str(chunks), "--qa", str(tmp_path / "qa")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and "5 kept pairs" in result.output and "retriever.rounds" in result.output


@pytest.mark.parametrize(
    "raw,expected",
    [
        (
            {"rounds": {"r1": {"from": "stage1"}, "r2": {"from": "stage2_r1", "index": "data/index_r1"}}},
            r"rounds.r2.index: data/index_r1 is not built before round r2",
        ),
        (
            {"rounds": {"r1": {"from": "stage1"}}, "retriever": {"rounds": {"r1": "data/index_r1"}}},
            r"retriever.rounds.r1: must name the index round r1 retrieves from, 'data/index'",
        ),
        ({"retriever": {"rounds": {"r5": "data/index"}}}, r"retriever.rounds.r5: no such round"),
        (
            {"evaluate": {"models": {"baseline": {"weights": "data/models/base", "index": "data/index_r1"}}}},
            r"evaluate.models.baseline.index: data/index_r1 is built only for a round in retriever.rounds",
        ),
    ],
)
def test_round_indexes_must_exist_where_they_are_used(raw: dict, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        parse_params(raw)


def test_a_round_after_an_adapted_one_may_use_its_index() -> None:
    params = parse_params(
        {
            "rounds": {"r1": {"from": "stage1"}, "r2": {"from": "stage2_r1", "index": "data/index_r1"}},
            "retriever": {"rounds": {"r1": "data/index"}},
        }
    )
    assert params.adapted_indexes() == {"r1": "data/index_r1"}
    assert params.round_settings("r2")[0] == "stage2_r1"
