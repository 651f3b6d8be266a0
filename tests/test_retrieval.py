import pytest

from simrag.retrieval import Retriever
from tests.conftest import TOPICS


@pytest.fixture(scope="module")
def retriever(topic_index):
    return Retriever(topic_index, dtype="fp32")


def test_each_planted_document_is_retrieved_first_for_its_question(retriever):
    names = list(TOPICS)
    results = retriever.search_many([question for _text, question in TOPICS.values()], k=5)
    for name, hits in zip(names, results, strict=True):
        assert hits[0].doc == f"{name}.md", (name, [h.doc for h in hits])
        assert len(hits) == 5
        assert hits[0].score >= hits[1].score >= hits[4].score
        assert -1.0 <= hits[4].score <= hits[0].score <= 1.0


def test_scores_are_cosine_similarities(retriever):
    from simrag.embedding import embed

    _text, question = TOPICS["k8s-pods"]
    hit = retriever.search(question, k=1)[0]
    query, chunk = embed(retriever._model, [question, hit.text])
    assert hit.score == pytest.approx(float(query @ chunk), abs=1e-3)


def test_threshold_flags_or_drops_weak_hits(topic_index):
    flagged = Retriever(topic_index, top_k=5, threshold=0.5, dtype="fp32")
    hits = flagged.search(TOPICS["git-rebase"][1])
    assert len(hits) == 5
    assert [h.above_threshold for h in hits] == [h.score >= 0.5 for h in hits]
    assert hits[0].above_threshold and not hits[-1].above_threshold
    assert flagged.stats.hits == 5 and flagged.stats.hits_above_threshold == sum(h.above_threshold for h in hits)
    dropping = Retriever(topic_index, top_k=5, threshold=0.5, drop_below_threshold=True, dtype="fp32")
    kept = dropping.search(TOPICS["git-rebase"][1])
    assert [h.chunk_id for h in kept] == [h.chunk_id for h in hits if h.above_threshold]
    assert dropping.stats.as_dict()["share_above_threshold"] == pytest.approx(len(kept) / 5)


def test_retriever_uses_the_embedder_the_index_was_built_with(retriever):
    assert retriever.embedder == "default" and len(retriever) == 20
    assert retriever.search_many([]) == []


def test_exact_search_agrees_with_chroma_and_repeats_itself(topic_index, tmp_path):
    questions = [question for _text, question in TOPICS.values()]
    exact = Retriever(topic_index, dtype="fp32").search_many(questions, k=5)
    chroma = Retriever(topic_index, dtype="fp32", search_mode="approximate").search_many(questions, k=5)
    for mine, theirs in zip(exact, chroma, strict=True):  # a 20-chunk collection: Chroma's search is exact too
        assert [h.chunk_id for h in mine] == [h.chunk_id for h in theirs]
        assert [h.score for h in mine] == pytest.approx([h.score for h in theirs], abs=1e-5)
        assert [(h.text, h.doc) for h in mine] == [(h.text, h.doc) for h in theirs]
    assert Retriever(topic_index, dtype="fp32").search_many(questions, k=5) == exact
    assert len(Retriever(topic_index, dtype="fp32").search(questions[0], k=50)) == 20  # k past the index


def test_exact_search_is_the_true_top_k_of_a_large_index(tmp_path):
    """3,000 random unit vectors: the exact top-5 of every query, equal scores ordered by the index."""
    import numpy as np

    from simrag.vectorstore import write_collection

    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((3000, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors[7] = vectors[3]  # a tie: chunk 3 comes first
    ids = [f"c{i:04d}" for i in range(3000)]
    meta = [{"source": "s", "doc": f"d{i}", "title": "t"} for i in range(3000)]
    write_collection(tmp_path / "index", "chunks", ids, vectors, ids, meta, {"embedder": "default"})
    retriever = Retriever(tmp_path / "index", dtype="fp32")
    queries = np.concatenate([vectors[3:4], rng.standard_normal((63, 384)).astype(np.float32)])
    found = retriever._exact(queries, 5)
    truth = np.argsort(-(queries @ vectors.T), axis=1, kind="stable")[:, :5]
    assert found["ids"] == [[ids[i] for i in row] for row in truth]
    assert found["ids"][0][:2] == ["c0003", "c0007"]
