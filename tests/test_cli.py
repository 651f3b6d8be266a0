import json

from click.testing import CliRunner

from simrag.cli import main


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
