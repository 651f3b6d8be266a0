"""Evaluation sets from the corpus: held-out chunks no round samples, questions in the evaluation format."""

from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from click.testing import CliRunner

from simrag.config import parse_params
from simrag.errors import ConfigError, DataError
from simrag.evalset import evalset_records, held_out_chunks, holdout_point, stage2_chunks
from simrag.jsonio import read_json, read_jsonl

CHUNKS = [{"id": f"docs/page{i // 4}.md#{i % 4}", "doc": f"page{i // 4}.md"} for i in range(4000)]


def test_held_out_chunks_are_a_stable_share_that_no_round_samples():
    ours = held_out_chunks(CHUNKS, "mydocs", 0.1)
    assert 360 <= len(ours) <= 440  # 10% of 4,000, give or take the hash's luck
    pool = stage2_chunks(CHUNKS, {"mydocs": 0.1, "other": 0.05})
    assert not {c["id"] for c in ours} & {c["id"] for c in pool}
    assert not {c["id"] for c in held_out_chunks(CHUNKS, "other", 0.05)} & {c["id"] for c in pool}
    # a chunk keeps its side as the corpus grows: the first half decides alone
    assert held_out_chunks(CHUNKS[:2000], "mydocs", 0.1) == [c for c in ours if c in CHUNKS[:2000]]
    assert all(holdout_point("mydocs", c["id"]) < 0.1 for c in ours)
    assert {c["id"] for c in ours} < {c["id"] for c in held_out_chunks(CHUNKS, "mydocs", 0.2)}  # a larger share adds
    assert stage2_chunks(CHUNKS, {}) == CHUNKS  # no set: Stage 2 samples as before


@pytest.mark.parametrize(
    ("evalsets", "expected"),
    [
        ({"mine": {"share": 0}}, "evalsets.mine.share: a share of the chunks, above 0 and at most 0.5 (got 0)"),
        ({"mine": {}}, "evalsets.mine.share: a share of the chunks, above 0 and at most 0.5 (got None)"),
        ({"mine": {"share": 0.1, "max_chunkz": 5}}, "evalsets.mine: max_chunkz: unknown key"),
        ({"my-set": {"share": 0.1}}, "evalsets.my-set: a set name may hold only letters, digits and '_'"),
        ({"a": {"share": 0.3}, "b": {"share": 0.3}}, "the shares held out add up to 0.6"),
    ],
)
def test_bad_evalsets_name_the_problem(evalsets, expected):
    with pytest.raises(ConfigError) as excinfo:
        parse_params({"evalsets": evalsets})
    assert expected in str(excinfo.value)


def test_a_set_overrides_stage2_for_itself():
    params = parse_params({"evalsets": {"mine": {"share": 0.05, "target_pairs": 150, "max_chunks": 400}}})
    share, settings = params.evalset_settings("mine")
    assert (share, settings.target_pairs, settings.max_chunks) == (0.05, 150, 400)
    assert settings.recipe == params.stage2.recipe
    assert params.evalset_shares() == {"mine": 0.05}
    with pytest.raises(ConfigError, match="no set 'other'"):
        params.evalset_settings("other")


def test_kept_pairs_become_questions_in_the_evaluation_format():
    kept = [SimpleNamespace(question="How are pods placed?", answer="By the scheduler.", chunk=CHUNKS[5])]
    assert evalset_records(kept, "mine") == [
        {
            "id": "mine-0001",
            "question": "How are pods placed?",
            "reference_answer": "By the scheduler.",
            "evidence": "By the scheduler.",
            "gold_doc": "page1.md",
            "chunk_id": "docs/page1.md#1",
        }
    ]
    with pytest.raises(DataError, match="no question survived the filters"):
        evalset_records([], "mine")


def _write_params(path: Path, **stage2) -> Path:
    settings = {
        "recipe": "extractive",
        "min_chunk_tokens": 1,
        "max_new_tokens": 12,
        "answer_must_retrieve": False,
        "min_question_answer_similarity": -1.0,
        "min_context_score": -1.0,
        "max_copy_share": 1.0,
        "max_duplicate_similarity": 1.0,
        **stage2,
    }
    path.write_text(
        yaml.safe_dump(
            {
                "model": {"device": "cpu", "dtype": "fp32"},
                "retrieval": {"top_k": 20},  # every chunk of the 20-chunk index: the round trip always finds it
                "evalsets": {"mine": {"share": 0.5, **settings}},
            }
        )
    )
    return path


def test_make_evalset_stage_writes_a_set_the_rounds_never_sample(
    tiny_model_dir: Path, topic_index: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from simrag.synthetic_qa import Writer
    from stages.make_evalset import main

    real_run = Writer.run

    def fluent(self, prompts, max_new_tokens):  # the tiny random model never ends a question: write fluent ones
        real_run(self, prompts, max_new_tokens)  # and still run it, for the token count
        return [(f"Which practice does section {i} of this guide describe?", False) for i, _ in enumerate(prompts)]

    monkeypatch.setattr(Writer, "run", fluent)

    chunks = topic_index.parent / "chunks.jsonl"
    params = _write_params(tmp_path / "params.yaml")
    args = ["--name", "mine", "--params", str(params), "--chunks", str(chunks), "--index", str(topic_index)]
    args += ["--base", str(tiny_model_dir), "--out", str(tmp_path / "sets"), "--metrics", str(tmp_path / "metrics")]
    args += ["--samples", str(tmp_path / "reports")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    questions = list(read_jsonl(tmp_path / "sets" / "mine.jsonl"))
    figures = read_json(tmp_path / "metrics" / "mine.json")
    all_chunks = list(read_jsonl(chunks))
    held_out = {c["id"] for c in held_out_chunks(all_chunks, "mine", 0.5)}
    assert figures["held_out_chunks"] == len(held_out) and figures["questions"] == len(questions) >= 1
    assert {q["chunk_id"] for q in questions} <= held_out
    assert not held_out & {c["id"] for c in stage2_chunks(all_chunks, {"mine": 0.5})}
    for q in questions:
        assert q["question"] and q["reference_answer"] and q["gold_doc"] and q["id"].startswith("mine-")
    samples = (tmp_path / "reports" / "evalset_samples_mine.md").read_text()
    assert samples.startswith("# Synthetic QA samples, evaluation set mine")

    monkeypatch.setattr(Writer, "run", real_run)
    strict = _write_params(tmp_path / "strict.yaml", min_context_score=1.0)
    refused = CliRunner().invoke(main, ["--params", str(strict), *args[:2], *args[4:]])
    assert refused.exit_code == 1 and "no question survived the filters" in refused.output
