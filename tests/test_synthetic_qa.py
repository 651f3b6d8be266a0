"""Stage 2: parsing the model's outputs, the round-trip filter on a 20-chunk index, rounds that chain."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from simrag.answer_spans import answer_spans
from simrag.config import Stage2Params, parse_params
from simrag.errors import ConfigError
from simrag.jsonio import read_json, read_jsonl, write_jsonl
from simrag.qa_filter import (
    answer_in_question,
    answer_match,
    copy_share,
    heading_answer,
    is_repetitive,
    similarity,
)
from simrag.retrieval import Retriever
from simrag.round_data import qa_conversations
from simrag.synthetic_qa import (
    Candidate,
    judge,
    mark_unfindable,
    parse_lines,
    parse_question,
    sample_chunks,
)
from tests.conftest import ROOT, TOPICS


@pytest.mark.parametrize(
    "text,limit,expected",
    [
        ("1. Docker\n2) the build cache\n- layers\n* Docker", 5, ["Docker", "the build cache", "layers"]),
        ('Answer 1: `kubectl`\nA: "Pod"\n\n\n', 5, ["kubectl", "Pod"]),
        ("", 5, []),
        ("\x00\ufffd\n---\n***", 5, ["\x00\ufffd"]),
        ("one\ntwo\nthree\nfour", 2, ["one", "two"]),
    ],
)
def test_parse_lines_survives_garbage(text: str, limit: int, expected: list[str]) -> None:
    assert parse_lines(text, limit) == expected


def test_parse_lines_drops_the_cut_off_last_line() -> None:
    assert parse_lines("first answer\nsecond ans", limit=5, drop_last=True) == ["first answer"]


@pytest.mark.parametrize(
    "text,expected",
    [
        ("Question: What is a Pod? It is the smallest unit.", "What is a Pod?"),
        ("\n\n1. How does Helm package charts?\n2. Why?", "How does Helm package charts?"),
        ("Docker images are built from layers.", ""),
        ("", ""),
        ("???", ""),
        ("Why?", ""),
        ("\x00 \ufffd", ""),
    ],
)
def test_parse_question_survives_garbage(text: str, expected: str) -> None:
    assert parse_question(text) == expected


def test_filter_checks_by_hand() -> None:
    chunk = "The build cache reuses unchanged layers, so rebuilding an image is fast."
    assert answer_match("unchanged layers", chunk) == 1.0
    assert answer_match("The Unchanged Layers!", chunk) == 1.0  # normalised: case, punctuation, articles
    assert answer_match("reuses old layers", chunk) == pytest.approx(2 / 3)  # best window: "reuses unchanged layers"
    assert answer_match("kubernetes", chunk) == 0.0
    assert copy_share("How does the build cache reuse layers?", chunk) == pytest.approx(3 / 7)
    assert copy_share("the build cache reuses unchanged layers", chunk) == 1.0
    assert is_repetitive("the cache the cache the cache the cache") and not is_repetitive(chunk)
    assert similarity("What is a Pod?", "what is a pod") == 1.0


@pytest.fixture(scope="module")
def retriever(topic_index: Path) -> Retriever:
    return Retriever(topic_index, top_k=3, threshold=0.7)


def _chunk(retriever: Retriever, topic: str) -> dict:
    hit = retriever.search(TOPICS[topic][0], k=1)[0]
    return {"id": hit.chunk_id, "source": hit.source, "text": hit.text, "n_tokens": 60}


def test_round_trip_keeps_the_good_pair_and_rejects_the_bad(retriever: Retriever) -> None:
    docker, cron = _chunk(retriever, "docker-layers"), _chunk(retriever, "cron-schedules")
    answer = "reuses unchanged layers"
    good = Candidate(docker, question="How does the Docker build cache reuse image layers?", answer=answer)
    guide = {"id": "guide#0", "text": "## Clean-up\n\nTo delete a project, do the following:\n\n1. Open the console."}
    planted = [
        good,
        Candidate(docker, question="How does Docker speed up rebuilding an image?", answer=answer),
        # answer in its chunk, but the question retrieves cron schedules: the round trip fails
        Candidate(docker, question="What are the five fields of a cron schedule?", answer=answer),
        Candidate(docker, question="What does Docker reuse?", answer="Kubernetes operators"),  # not in the chunk
        Candidate(cron, question=cron["text"].split(",")[0] + "?", answer="minute"),  # copies the chunk
        Candidate(docker, question="What what what what what what is it?", answer="layers"),  # degenerate
        # the question gives its answer away: half of the answer's content words are in it
        Candidate(docker, question="What are Docker images built from?", answer="Docker images are built from layers"),
        Candidate(
            guide, question="What comes first when removing resources?", answer="To delete a project, do the following:"
        ),
        Candidate(guide, question="What should I read about removing resources?", answer="Clean-up"),  # a heading
        Candidate(docker, question="How does the Docker build cache reuse layers?", answer=answer),
        Candidate(docker, truncated=True),
        Candidate(docker),
    ]
    # off_topic has its own test below; here the other filters, each planted alone
    verdicts = judge(planted, retriever, Stage2Params(min_context_score=0.5, min_question_answer_similarity=-1.0))
    assert [c.verdict for c in planted] == [
        "kept",
        "kept",
        "not_retrieved",
        "answer_not_in_chunk",
        "copies_chunk",
        "repetitive",
        "answer_in_question",
        "heading_answer",
        "heading_answer",
        "duplicate",
        "truncated",
        "empty",
    ]
    assert verdicts["kept"] == 2
    assert good.checks["source_rank"] == 1 and good.checks["context_score"] >= 0.5
    # the same pair under a threshold above its score: rejected for the score, not for retrieval
    strict = Candidate(docker, question=good.question, answer=good.answer)
    strict_score = min(1.0, good.checks["context_score"] + 0.01)
    judge([strict], retriever, Stage2Params(min_context_score=strict_score, min_question_answer_similarity=-1.0))
    assert strict.verdict == "low_context_score"


def test_off_topic_and_unfindable_answers_are_rejected(retriever: Retriever) -> None:
    docker = _chunk(retriever, "docker-layers")
    answer = "the build cache reuses unchanged layers so that rebuilding an image after a small change is fast"
    on = Candidate(docker, question="Why is rebuilding an image fast the second time?", answer=answer)
    off = Candidate(docker, question="What are the five fields of a cron schedule?", answer=answer)
    judge([on, off], retriever, Stage2Params(min_context_score=0.3, min_question_answer_similarity=0.3))
    assert on.checks["question_answer_similarity"] > 0.3 > off.checks["question_answer_similarity"]
    assert (on.verdict, off.verdict) == ("kept", "off_topic")
    # an answer that, as a query, does not find its own chunk gets no question written
    findable = Candidate(docker, answer=answer)
    lost = Candidate(docker, answer="Kubernetes operators reconcile custom resources.")  # not in the chunk
    mark_unfindable([findable, lost], retriever, Stage2Params(min_context_score=0.3))
    assert findable.verdict == "" and findable.checks["answer_self_score"] >= 0.3
    assert lost.verdict == "answer_not_findable" and lost.checks["answer_self_score"] == 0.0


@pytest.mark.parametrize(
    ("answer", "question", "gives_away"),
    [
        ("asyncio", "What is the asyncio module?", True),  # the answer occurs in the question
        ("Create the GKE cluster", "How can I create a private GKE cluster?", True),  # 3 of 3 content words
        ("the venv module", "Which tool makes virtual environments?", False),  # neither word is in it
        ("A Pod groups containers that share storage", "What is a Kubernetes Pod?", False),  # 1 of 5
    ],
)
def test_answer_in_question(answer: str, question: str, gives_away: bool) -> None:
    assert answer_in_question(answer, question) is gives_away


CHUNK = "## Clean-up\n\nTo delete a project, do the following:\n\nRun `gcloud projects delete` on port 8080."


@pytest.mark.parametrize(
    ("answer", "question", "is_heading"),
    [
        ("To delete a project, do the following:", "How do I delete a project?", True),  # a lead-in
        ("Clean-up", "What comes last?", True),  # a heading of the chunk
        ("Getting Started Guide", "How do I begin?", True),  # a short Title Case label
        ("Overview", "What does the page cover?", True),  # one content word, nothing asked by name
        ("--force", "What does the flag do?", False),  # a literal: an option
        ("gcloud projects delete", "What deletes a project?", False),  # two content words
        ("8080", "On what port does it listen?", False),  # a number
        ("Jenkins", "Which tool runs the jobs?", False),  # a name, asked for by name
        ("Kubernetes", "Who schedules the pods?", False),
        ("The build cache reuses unchanged layers.", "Why is a rebuild fast?", False),  # a sentence
    ],
)
def test_heading_answer(answer: str, question: str, is_heading: bool) -> None:
    assert heading_answer(answer, question, CHUNK) is is_heading


def test_answer_spans_take_informative_sentences_not_headings_or_code() -> None:
    text = (
        "continues a sentence that the previous chunk began and that ends in this one.\n\n"
        "## Configuring the cache\n\n"
        "The build cache stores every layer that a Dockerfile instruction produces on the local disk. "
        "See below.\n\n"
        "    RUN apt-get update && apt-get install -y curl\n\n"
        "| option | default |\n\n"
        "Next topic: networking.\n\n"
        "To clear it, do the following:\n\n"
        "- Docker reuses a cached layer only when the instruction and all of its inputs are unchanged.\n"
    )
    spans = answer_spans(text, 5)
    assert spans == [  # the most distinct content words first
        "The build cache stores every layer that a Dockerfile instruction produces on the local disk.",
        "Docker reuses a cached layer only when the instruction and all of its inputs are unchanged.",
    ]
    assert answer_spans(text, 1) == spans[:1]
    assert answer_spans("    x = 1\n    y = 2", 2) == []
    assert answer_spans(text, 5, sentences=2) == spans  # "See below." points on: no follower


def test_answer_spans_run_on_into_the_sentences_that_continue_them() -> None:
    lead = "The event loop keeps only weak references to tasks, so an unreferenced task can vanish mid-run."
    follow = "It is safer to keep a strong reference to each task in a set and discard it when done."
    text = f"{lead} {follow} See the `asyncio` reference for more.\n\nAnother paragraph starts here and is not joined."
    assert answer_spans(text, 1, sentences=1) == [lead]
    assert answer_spans(text, 1, sentences=2) == [f"{lead} {follow}"]
    assert answer_spans(text, 1, sentences=3) == [f"{lead} {follow}"]  # the third points on: the answer stops
    cut = f"{lead} It is safer to keep a strong reference to each"  # the chunk ends mid-sentence
    assert answer_spans(cut, 1, sentences=2) == [lead]
    code = f"{lead} `tasks.add(asyncio.create_task(x()))`; `t.add_done_callback(s.discard)`."
    assert answer_spans(code, 1, sentences=2) == [lead]


def test_sample_chunks_by_source_weights() -> None:
    chunks = [{"id": f"{s}{i}", "source": s, "text": "x", "n_tokens": 200} for s in "ab" for i in range(50)]
    chunks.append({"id": "short", "source": "a", "text": "x", "n_tokens": 5})
    picked = sample_chunks(chunks, Stage2Params(max_chunks=20, source_weights={"a": 3, "b": 1}), seed="0:r1")
    assert sorted(c["source"] for c in picked).count("a") == 15 and len(picked) == 20
    assert "short" not in {c["id"] for c in picked}
    assert picked == sample_chunks(chunks, Stage2Params(max_chunks=20, source_weights={"a": 3, "b": 1}), "0:r1")
    with pytest.raises(Exception, match=r"sources not in the corpus: c"):
        sample_chunks(chunks, Stage2Params(source_weights={"c": 1}), "0")


def test_rounds_must_chain_in_order() -> None:
    params = parse_params({"rounds": {"r1": {"from": "stage1"}, "r2": {"from": "stage2_r1", "max_chunks": 7}}})
    assert params.round_settings("r2") == ("stage2_r1", Stage2Params(max_chunks=7))
    with pytest.raises(ConfigError, match=r"rounds.r1.from: must be one of \['stage1'\]"):
        parse_params({"rounds": {"r1": {"from": "stage2_r2"}, "r2": {"from": "stage1"}}})
    with pytest.raises(ConfigError, match=r"rounds\.r1: max_chunkz: unknown key"):
        parse_params({"rounds": {"r1": {"from": "stage1", "max_chunkz": 3}}})


def test_a_round_s_training_prompts_must_leave_room_for_question_and_answer() -> None:
    # 1,024 tokens of context in conversations cut at 512: every pair would lose its answer and be dropped
    with pytest.raises(ConfigError, match=r"rounds\.r1: .*max_context_tokens=1024 .* at least 1152"):
        parse_params({"stage2": {"max_context_tokens": 1024}, "rounds": {"r1": {"from": "stage1"}}})
    params = parse_params(
        {"stage2": {"max_context_tokens": 1024, "max_len": 1536}, "rounds": {"r1": {"from": "stage1"}}}
    )
    assert params.round_settings("r1")[1].train_params(params.train).max_len == 1536
    assert params.stage2.model_copy(update={"max_len": None}).train_params(params.train).max_len == 512
    one_round = {"r1": {"from": "stage1", "max_context_tokens": 1024, "max_len": 1200}, "r2": {"from": "stage2_r1"}}
    assert parse_params({"rounds": one_round}).round_settings("r1")[1].train_params(params.train).max_len == 1200


def test_dvc_expands_one_stage_per_round_and_model() -> None:
    from dvc.repo import Repo

    with Repo(str(ROOT)) as repo:
        names = {stage.addressing for stage in repo.index.stages}
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    for name in raw["rounds"]:
        assert {f"generate_qa@{name}", f"train_stage2@{name}", f"evaluate@stage2_{name}"} <= names
    for name in raw["retriever"]["rounds"]:
        assert {f"train_retriever@{name}", f"reindex@{name}"} <= names


def _kept_pairs(round_name: str, n: int) -> list[dict]:
    pairs = []
    for i, (topic, (text, question)) in enumerate(list(TOPICS.items())[:n]):
        pairs.append(
            {
                "round": round_name,
                "question": question,
                "answer": text.split(".")[0] + ".",
                "chunk_id": f"{topic}#0",
                "verdict": "kept",
                "context": [text],
            }
        )
        pairs.append({**pairs[-1], "verdict": "low_context_score", "context": [], "question": f"rejected {i}?"})
    return pairs


def test_rounds_chain_and_a_thin_round_stops(tiny_model_dir: Path, tiny_adapter_dir: Path, tmp_path: Path) -> None:
    from stages.train_stage2 import main

    instructions = tmp_path / "alpaca.json"
    instructions.write_text(json.dumps([{"instruction": f"Say {i}.", "output": f"{i}"} for i in range(10)]))
    params = tmp_path / "params.yaml"
    params.write_text(
        yaml.safe_dump(
            {
                "model": {"device": "cpu"},
                "train": {"batch_size": 2, "max_steps": 2, "eval_steps": 1, "max_len": 256},
                "stage1": {"data": [str(instructions)]},
                "stage2": {"min_pairs": 6, "val_size": 2, "replay_share": 0.5, "max_context_tokens": 64},
                "rounds": {"r1": {"from": "stage1"}, "r2": {"from": "stage2_r1", "min_pairs": 4}},
            }
        )
    )
    models, qa = tmp_path / "models", tmp_path / "qa"
    shutil.copytree(tiny_adapter_dir, models / "stage1")
    write_jsonl(qa / "r1.jsonl", _kept_pairs("r1", 10))
    write_jsonl(qa / "r2.jsonl", _kept_pairs("r2", 5))

    def run(round_name: str):  # type: ignore[no-untyped-def]
        args = ["--round", round_name, "--params", str(params), "--base", str(tiny_model_dir)]
        args += ["--models", str(models), "--qa", str(qa), "--checkpoints", str(tmp_path / "ckpt")]
        args += ["--plots", str(tmp_path / "plots"), "--metrics", str(tmp_path / "metrics")]
        return CliRunner().invoke(main, args)

    before = run("r2")  # r2 starts from r1's adapter, which does not exist yet
    assert before.exit_code == 1 and "no LoRA adapter to continue from" in before.output
    assert "stage2_r1" in before.output

    first = run("r1")
    assert first.exit_code == 0, first.output
    figures = read_json(tmp_path / "metrics" / "r1.json")
    assert figures["from"] == "stage1"
    assert figures["examples"]["qa_pairs"] == 8 and figures["examples"]["replay"] == 4
    assert (models / "stage2_r1" / "adapter_config.json").is_file()

    second = run("r2")
    assert second.exit_code == 0, second.output
    assert read_json(tmp_path / "metrics" / "r2.json")["from"] == "stage2_r1"

    (qa / "r1.jsonl").write_text('{"question": "cut off', encoding="utf-8")
    corrupt = run("r1")
    assert corrupt.exit_code == 1 and "QA file is corrupt" in corrupt.output and "r1.jsonl:1" in corrupt.output

    write_jsonl(qa / "r1.jsonl", _kept_pairs("r1", 3))
    thin = run("r1")
    assert thin.exit_code == 1
    assert "3 of 6 synthetic QA pairs were kept, fewer than stage2.min_pairs (6)" in thin.output
    assert "stage2.max_chunks" in thin.output and "stage2.min_context_score" in thin.output


def test_kept_pairs_train_as_rag_prompts(tiny_model_dir: Path) -> None:
    from simrag.models import load_tokenizer
    from simrag.prompting import SYSTEM_PROMPT
    from simrag.sft_data import IGNORE, encode

    tokenizer = load_tokenizer(tiny_model_dir)
    record = _kept_pairs("r1", 1)[0]
    (conversation,) = qa_conversations([record], tokenizer, max_context_tokens=16)
    assert conversation.system == SYSTEM_PROMPT and conversation.assistant == record["answer"]
    assert conversation.user.startswith("Context:\n[1] ") and conversation.user.endswith(record["question"])
    assert "…" in conversation.user  # the passage was cut to 16 tokens
    example, status = encode(conversation, tokenizer, max_len=512)
    assert status == "ok" and example is not None
    learned = [t for t, label in zip(example["input_ids"], example["labels"], strict=True) if label != IGNORE]
    assert tokenizer.decode(learned).strip() == record["answer"] + "<|im_end|>"


@pytest.mark.parametrize("recipe", ["extractive", "simrag", "paper"])
def test_generate_qa_stage_writes_verdicts_metrics_and_samples(
    recipe: str, tiny_model_dir: Path, tiny_adapter_dir: Path, topic_index: Path, tmp_path: Path
) -> None:
    from stages.generate_qa import main

    params = tmp_path / "params.yaml"
    params.write_text(
        yaml.safe_dump(
            {
                "model": {"device": "cpu"},
                "stage2": {"recipe": recipe, "max_chunks": 4, "min_chunk_tokens": 1, "max_new_tokens": 8},
                "rounds": {"r1": {"from": "stage1"}},
            }
        )
    )
    models = tmp_path / "models"
    shutil.copytree(tiny_adapter_dir, models / "stage1")
    chunks = topic_index.parent / "chunks.jsonl"
    args = ["--round", "r1", "--params", str(params), "--chunks", str(chunks), "--index", str(topic_index)]
    args += ["--base", str(tiny_model_dir), "--models", str(models), "--out", str(tmp_path / "qa")]
    args += ["--metrics", str(tmp_path / "metrics"), "--samples", str(tmp_path / "reports")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    records = list(read_jsonl(tmp_path / "qa" / "r1.jsonl"))
    figures = read_json(tmp_path / "metrics" / "r1.json")
    assert figures["chunks"] == 4 and figures["candidates"] == len(records) >= 4 and figures["recipe"] == recipe
    assert figures["kept"] + sum(figures["rejected"].values()) == len(records)
    assert figures["generated_tokens"] > 0
    assert (tmp_path / "reports" / "qa_samples_r1.md").read_text().startswith("# Synthetic QA samples, round r1")

    unknown = CliRunner().invoke(main, ["--round", "r9", *args[2:]])
    assert unknown.exit_code == 1 and "no round 'r9'" in unknown.output


def test_a_round_s_records_read_back_as_their_type_and_bad_files_are_named(tmp_path: Path) -> None:
    from simrag.errors import DataError
    from simrag.records import read_round

    write_jsonl(tmp_path / "r1.jsonl", _kept_pairs("r1", 2))
    records = read_round(tmp_path, "r1")
    assert [r["verdict"] for r in records] == ["kept", "low_context_score"] * 2
    with pytest.raises(DataError, match=r"QA file not found: .*r2\.jsonl \(run generate_qa@r2 first\)"):
        read_round(tmp_path, "r2")
    (tmp_path / "r3.jsonl").write_text('{"question": "Why?", "answer": "Because.", "verdict": "kept"}\n')
    with pytest.raises(DataError, match=r"r3\.jsonl: record 1 lacks chunk_id; run generate_qa@r3 first"):
        read_round(tmp_path, "r3")
    (tmp_path / "r4.jsonl").write_text('{"question": "Why?",\n')
    with pytest.raises(DataError, match=r"QA file is corrupt"):
        read_round(tmp_path, "r4")
