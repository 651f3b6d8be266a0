import json

from click.testing import CliRunner

from simrag.cli import main
from tests.conftest import tiny_rag_params


def test_search_prints_ranked_hits_with_scores(topic_index, tmp_path):
    result = CliRunner().invoke(
        main,
        [
            "search",
            "What is a Kubernetes Pod?",
            "-k",
            "3",
            "--index",
            str(topic_index),
            "--params",
            str(tmp_path / "none.yaml"),
        ],
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("3 hits for 'What is a Kubernetes Pod?'")
    assert "threshold 0.70" in lines[0] and "20 chunks indexed" in lines[0]
    assert "1. " in result.output and "k8s-pods.md#0" in result.output
    assert "smallest deployable unit" in result.output


def test_search_json_output(topic_index, tmp_path):
    result = CliRunner().invoke(
        main,
        [
            "search",
            "cron schedule fields",
            "-k",
            "2",
            "--json",
            "--index",
            str(topic_index),
            "--params",
            str(tmp_path / "x.yaml"),
        ],
    )
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [r["rank"] for r in rows] == [1, 2] and rows[0]["doc"] == "cron-schedules.md"
    assert {"chunk_id", "score", "above_threshold", "text"} <= set(rows[0])


def test_search_without_an_index_says_how_to_build_it(tmp_path):
    result = CliRunner().invoke(main, ["search", "anything", "--index", str(tmp_path / "index")])
    assert result.exit_code == 1
    assert "no index at" in result.output and "dvc repro index" in result.output


def test_ask_answers_with_the_retrieved_chunks(tmp_path, tiny_model_dir, topic_index):
    params = tiny_rag_params(tmp_path / "params.yaml", tiny_model_dir, topic_index, max_new_tokens=5)
    args = ["ask", "What is a Kubernetes Pod?", "--base", str(tiny_model_dir)]  # the index: the model's
    result = CliRunner().invoke(main, [*args, "--params", str(params)])
    assert result.exit_code == 0, result.output
    assert "(baseline, " in result.output and "5 tokens, cut off at the token limit; context from:)" in result.output
    assert "[1] " in result.output and "k8s-pods.md#0" in result.output and "[3]" not in result.output
    unknown = CliRunner().invoke(main, [*args, "--params", str(params), "--model", "stage9"])
    assert unknown.exit_code == 1 and "unknown model 'stage9'" in unknown.output


def test_chat_loads_once_and_answers_each_question_with_its_sources(tmp_path, tiny_model_dir, topic_index, monkeypatch):
    from simrag import rag

    params = tiny_rag_params(tmp_path / "params.yaml", tiny_model_dir, topic_index, max_new_tokens=4)
    loads = []
    real_init = rag.RagModel.__init__
    monkeypatch.setattr(rag.RagModel, "__init__", lambda self, *a, **k: loads.append(1) or real_init(self, *a, **k))
    questions = "What is a Kubernetes Pod?\nHow does git rebase work?\n/exit\nnever asked\n"
    args = ["chat", "--base", str(tiny_model_dir), "--params", str(params)]
    result = CliRunner().invoke(main, args, input=questions)
    assert result.exit_code == 0, result.output
    assert len(loads) == 1 and result.output.count("context from:)") == 2
    assert "k8s-pods.md#0" in result.output and "git-rebase.md#0" in result.output
    assert "20 chunks" in result.output
    ended = CliRunner().invoke(main, args, input="")  # end of input at once
    assert ended.exit_code == 0 and "context from" not in ended.output
