import json
import subprocess
import sys

import pytest
import yaml

from simrag.config import GenerationParams, ModelParams
from simrag.embedding import embed
from simrag.errors import DataError
from simrag.evaluation import evaluate_set, label_variants, load_questions
from simrag.metrics import evidence_recall, token_f1
from simrag.models import load_generator
from simrag.report import resources_section
from simrag.retrieval import Retriever
from tests.conftest import ROOT, TOPICS


def _question_file(path, with_references=True, with_labels=False):
    lines = []
    for i, (name, (text, question)) in enumerate(list(TOPICS.items())[:6]):
        record = {"id": f"q{i}", "question": question}
        if with_references:
            record.update(reference_answer=text.split(".")[0], gold_doc=f"{name}.md", evidence=text)
        if with_labels:
            record["label"] = ["yes", "yes", "yes", "no", "maybe", "no"][i]  # majority class: 3 of 6
        lines.append(json.dumps(record))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_load_questions_skips_bad_lines_and_refuses_empty_or_missing_files(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text('{"id": "a", "question": "What?"}\n{broken\n{"id": "b"}\n\n{"question": "Why?"}\n')
    questions, skipped = load_questions(path)
    assert [q["id"] for q in questions] == ["a", "line5"] and skipped == 2
    assert len(load_questions(path, max_questions=1)[0]) == 1
    path.write_text("{broken\n")
    with pytest.raises(DataError, match="no usable question"):
        load_questions(path)
    with pytest.raises(DataError, match="evaluation set not found"):
        load_questions(tmp_path / "missing.jsonl")


def test_evaluate_set_scores_every_question(tmp_path, tiny_model_dir, topic_index):
    generator = load_generator(tiny_model_dir, params=ModelParams(device="cpu", dtype="fp32"))
    retriever = Retriever(topic_index, top_k=3, dtype="fp32")
    questions, _ = load_questions(_question_file(tmp_path / "q.jsonl", with_labels=True))
    generation = GenerationParams(max_new_tokens=8, max_context_tokens=200, batch_size=4)
    records, summary = evaluate_set(generator, retriever, questions, generation, (200, 0), progress=False)
    assert len(records) == 6 and summary["n"] == 6
    first = records[0]
    assert len(first["retrieved"]) == 3 and first["retrieved"][0]["doc"] == "docker-layers.md"
    assert set(first["scores"]) == {
        "context_relevance",
        "context_relevance_ref",
        "answer_quality",
        "groundedness",
        "question_similarity",
        "token_f1",
        "rouge_l",
        "answer_similarity",
        "evidence_recall",
        "recall_at_k",
        "mrr",
        "label_accuracy",
    }
    assert first["predicted_label"] in ("yes", "no", "maybe") and 1 <= first["new_tokens"] <= 8
    # Scored by the index's own embedder, the reference relevance is the retrieval score itself.
    for record in records:
        assert record["scores"]["context_relevance_ref"] == pytest.approx(
            record["scores"]["context_relevance"], abs=2e-4
        )
    for name in ("context_relevance", "answer_quality", "recall_at_k", "label_accuracy"):
        stat = summary[name]
        assert stat["n"] == 6 and stat["ci_low"] <= stat["mean"] <= stat["ci_high"]
    assert summary["recall_at_k"]["mean"] == 1.0  # every planted document is found
    assert summary["majority_baseline"] == pytest.approx(3 / 6)
    assert summary["tokens_per_second"] > 0 and "response_seconds" not in summary
    assert summary["context_relevance_pooled"]["n"] == 6 * 3  # the paper's CI: every retrieved chunk
    assert sum(summary["predicted_labels"].values()) == 6 and summary["true_labels"] == {"yes": 3, "no": 2, "maybe": 1}
    vectors = embed(retriever.model, [q["question"] for q in questions] + [q["reference_answer"] for q in questions])
    answers = embed(retriever.model, [r["answer"] for r in records])
    for i, (question, record) in enumerate(zip(questions, records, strict=True)):
        scores, echo = record["scores"], record["question_echo"]
        # cosines by the reference embedder (here the index's own), and 0 for an empty answer
        empty = not record["answer"].strip()
        assert scores["answer_similarity"] == (
            0.0 if empty else pytest.approx(float(answers[i] @ vectors[6 + i]), abs=1e-3)
        )
        assert scores["question_similarity"] == (
            0.0 if empty else pytest.approx(float(answers[i] @ vectors[i]), abs=1e-3)
        )
        # the question echo: the question scored as its own answer on the reference metrics
        assert set(echo) == {"token_f1", "rouge_l", "answer_similarity", "evidence_recall"}
        assert echo["token_f1"] == pytest.approx(token_f1(question["question"], question["reference_answer"]), abs=1e-4)
        assert echo["evidence_recall"] == pytest.approx(
            evidence_recall(question["question"], question["evidence"]), abs=1e-4
        )
        assert echo["answer_similarity"] == pytest.approx(float(vectors[i] @ vectors[6 + i]), abs=1e-3)
    echo_f1 = [r["question_echo"]["token_f1"] for r in records]
    assert summary["question_echo"]["token_f1"]["mean"] == pytest.approx(sum(echo_f1) / 6, abs=1e-4)
    assert summary["question_echo"]["answer_similarity"]["n"] == 6


def test_label_variants_cover_case_and_a_leading_space():
    assert label_variants("yes") == ["yes", " yes", "Yes", " Yes", "YES", " YES"]
    assert label_variants("Maybe")[:2] == ["maybe", " maybe"]


def _run(script, *args, cwd):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "stages" / script), *args], capture_output=True, text=True, cwd=cwd
    )
    return proc


def test_evaluate_and_report_stages_end_to_end(tmp_path, tiny_model_dir, tiny_adapter_dir, topic_index):
    sets = {
        "plain": str(_question_file(tmp_path / "plain.jsonl", with_references=False)),
        "refs": str(_question_file(tmp_path / "refs.jsonl")),
    }
    params = {
        "generation": {"max_new_tokens": 6, "max_context_tokens": 128, "batch_size": 4},
        "model": {"dtype": "fp32", "device": "cpu"},
        "retrieval": {"top_k": 3},
        "evaluate": {
            "models": {
                "baseline": {"weights": str(tiny_model_dir), "index": str(topic_index)},
                "tuned": {"weights": str(tiny_adapter_dir), "index": str(topic_index)},
            },
            "sets": sets,
            "pooled": {"both": ["plain", "refs"]},
            "bootstrap_samples": 200,
            "timing_questions": 2,
        },
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    common = ["--base", str(tiny_model_dir), "--index", str(topic_index)]
    for name, entry in params["evaluate"]["models"].items():
        proc = _run("evaluate.py", "--model", name, "--weights", entry["weights"], *common, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "metrics/eval/baseline/refs.json").read_text())
    assert (
        summary["n"] == 6
        and "token_f1" in summary
        and "token_f1" not in json.loads((tmp_path / "metrics/eval/baseline/plain.json").read_text())
    )
    assert len((tmp_path / "data/eval/tuned/refs.jsonl").read_text().splitlines()) == 6

    # What a round's generate_qa stage measured: the report tabulates and plots it.
    qa_figures = {"from": "stage1", "candidates": 10, "kept": 3, "rejected": {"not_retrieved": 5, "empty": 2}}
    qa_figures |= {"generation_seconds": 12.5, "tokens_per_second": 40.0}
    (tmp_path / "metrics/generate_qa").mkdir(parents=True)
    (tmp_path / "metrics/generate_qa/r1.json").write_text(json.dumps(qa_figures))
    params["rounds"] = {"r1": {"from": "stage1"}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))

    timing = _run("timing.py", "--base", str(tiny_model_dir), cwd=tmp_path)
    assert timing.returncode == 0, timing.stderr
    times = json.loads((tmp_path / "metrics/timing.json").read_text())
    assert times["set"] == "plain" and times["questions"] == 2 and "cores" in times["machine"]
    assert len(times["models"]["tuned"]["seconds"]) == 2 and "vs_baseline" in times["models"]["tuned"]

    proc = _run("report.py", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = (tmp_path / "reports/results.md").read_text()
    index = str(topic_index)
    assert "### refs" in report and f"| baseline | {index} | 6 |" in report and f"| tuned | {index} | 6 |" in report
    assert "### both (plain + refs)" in report and f"| baseline | {index} | 12 |" in report
    assert "| r1 | stage1 | ? | ? | 10 | 3 | 30.0% | 5 | 2 |" in report
    assert "| generate_qa@r1 | 12 | – | – | 40.0 tokens/s |" in report
    assert "## Retriever adaptation" not in report and "## The retriever's effect" not in report
    assert "## The generator's effect" in report and "sign-flip" in report and "Holm" in report
    assert "## Response time" in report and "## Headline: both (12 questions)" in report
    assert (tmp_path / "plots/eval/qa_verdicts.csv").read_text().splitlines()[1:] == [
        "r1,kept,3",
        "r1,not_retrieved,5",
        "r1,empty,2",
    ]
    assert (tmp_path / "plots/eval/qa_verdicts.png").is_file() and (
        tmp_path / "plots/eval/retrieval_scores.png"
    ).is_file()
    assert "| tuned | baseline | both | Token F1 |" in report
    comparisons = json.loads((tmp_path / "plots/eval/comparisons.json").read_text())
    # the same index: the generator alone, compared on answers only; the pooled set is tested, not its members
    assert {row["isolates"] for row in comparisons} == {"generator"}
    assert {row["set"] for row in comparisons} == {"both"}
    assert not {row["metric"] for row in comparisons} & {"context_relevance", "recall_at_k", "mrr"}
    assert "question_similarity" not in {row["metric"] for row in comparisons}  # shown, not tested
    assert "Answer ~ question" in report and report.count("| (the question itself) |") == 3  # headline, refs, both
    plain = json.loads((tmp_path / "metrics/eval/baseline/plain.json").read_text())
    assert "question_echo" not in plain and "question_echo" in summary
    assert all(row["p_adjusted"] >= row["p_value"] for row in comparisons)
    headline = json.loads((tmp_path / "metrics/summary.json").read_text())
    assert set(headline) == {"both"} and "token_f1_vs_baseline_p_adj" in headline["both"]["tuned"]
    assert set(headline["both"]["question_echo"]) == {"token_f1", "answer_similarity", "evidence_recall"}
    assert (tmp_path / "plots/eval/forest.png").stat().st_size > 5_000
    assert (tmp_path / "plots/eval/metrics.png").stat().st_size > 10_000
    assert (tmp_path / "plots/eval/summary.csv").read_text().startswith("model,set,metric,mean,ci_low,ci_high")


def test_comparison_pairs_attribute_by_design():
    from simrag.report import Pair, comparison_pairs

    models = {
        "baseline": {"weights": "base", "index": "data/index"},
        "stage1": {"weights": "s1", "index": "data/index"},
        "stage2_r1": {"weights": "r1", "index": "data/index"},
        "stage2_r2": {"weights": "r2", "index": "data/index"},
        "stage2_r2_tuned": {"weights": "r2", "index": "data/index_r1"},
    }
    pairs = comparison_pairs(models, {"stage2_r1": "stage1", "stage2_r2": "stage2_r1", "stage2_r2_tuned": "stage2_r1"})
    assert pairs == [
        Pair("stage1", "baseline", "generator"),
        Pair("stage2_r1", "baseline", "generator"),
        Pair("stage2_r1", "stage1", "generator"),
        Pair("stage2_r2", "baseline", "generator"),
        Pair("stage2_r2", "stage1", "generator"),
        Pair("stage2_r2", "stage2_r1", "generator"),
        Pair("stage2_r2_tuned", "stage2_r2", "retriever"),  # same weights: the retriever alone
    ]


def test_evaluate_stage_fails_cleanly_without_an_index(tmp_path, tiny_model_dir):
    (tmp_path / "params.yaml").write_text(
        yaml.safe_dump({"evaluate": {"sets": {"s": str(_question_file(tmp_path / "s.jsonl"))}}})
    )
    proc = _run(
        "evaluate.py",
        "--model",
        "baseline",
        "--weights",
        str(tiny_model_dir),
        "--base",
        str(tiny_model_dir),
        "--index",
        str(tmp_path / "no-index"),
        cwd=tmp_path,
    )
    assert proc.returncode == 1 and "no index at" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "metrics").exists() and not (tmp_path / "data").exists()


def test_resources_table_shows_each_stages_peak_memory_where_it_recorded_one():
    index = {"vectors": 3, "dimension": 2, "embed_seconds": 1.0, "chunks_per_second": 3.0, "index_mb": 0.5}
    qa = {"generation_seconds": 12.5, "tokens_per_second": 40.0}
    lines = resources_section(
        {
            "index": {**index, "seconds": 2.0, "peak_memory_mb": 1552.0},
            "generate_qa": {"r1": {**qa, "peak_memory_mb": 2701.9}, "r2": qa},
        }
    )
    assert "| index | 2 | 1,552 | 0.5 | 3.0 chunks/s |" in lines
    assert "| generate_qa@r1 | 12 | 2,702 | – | 40.0 tokens/s |" in lines
    assert "| generate_qa@r2 | 12 | – | – | 40.0 tokens/s |" in lines
