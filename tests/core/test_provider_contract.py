"""A third-party provider that breaks its contract is named in one line; the store is never left wrong."""

import numpy as np
import pytest

from embhub.errors import PluginError, StoreError
from embhub.extract import extract
from embhub.plugins import load_plugins
from embhub.provider import Embedded, Failure, Item, Provider
from embhub.registry import ModelSpec
from embhub.store import EmbeddingStore

ITEMS = [Item(f"item{i}", f"v{i}", i) for i in range(1, 7)]


class Numbers(Provider):
    """Embeds item ``vK`` as ``[K, 2K, 3K]``; ``broken`` replaces the result of batches holding that row."""

    name = "numbers"
    entity = "number"
    id_namespace = "word"
    key_namespace = "word"

    def __init__(self, broken=None, row=3):
        super().__init__()
        self.broken, self.row = broken, row

    @property
    def dim(self):
        return 3

    def embed(self, items):
        values = np.array([int(item.value[1:]) for item in items], dtype=np.float64)
        ids, keys = [i.input_id for i in items], [i.value for i in items]
        vectors = np.outer(values, [1, 2, 3])
        if self.broken and any(item.row == self.row for item in items):
            return self.broken(ids, keys, vectors)
        return Embedded(ids, keys, vectors)


def run(provider, tmp_path, dtype="float32"):
    out = tmp_path / "numbers.zarr"
    extract(ModelSpec("numbers", "numbers"), provider, ITEMS, out, plugins=load_plugins(), batch_size=2, dtype=dtype)
    return EmbeddingStore.open(out)


def raising(ids, keys, vectors):
    raise RuntimeError("CUDA out of memory\nsecond line")


def first_item_twice(ids, keys, vectors):
    return Embedded(ids, keys, vectors, [Failure(ids[0], "also failed")])


BROKEN = {
    "not an Embedded": (lambda ids, keys, vectors: (ids, keys, vectors), "returned tuple"),
    "one-dimensional vectors": (lambda ids, keys, vectors: Embedded(ids, keys, vectors[:, 0]), "shape (2,)"),
    "three-dimensional vectors": (lambda ids, keys, vectors: Embedded(ids, keys, vectors.reshape(2, 3, 1)), "shape (2, 3, 1)"),
    "text vectors": (lambda ids, keys, vectors: Embedded(ids, keys, vectors.astype(str).astype(object)), "dtype object"),
    "a row missing": (lambda ids, keys, vectors: Embedded(ids, keys, vectors[:1]), "shape (1, 3)"),
    "an item twice": (first_item_twice, "'item3' is reported 2 times"),
    "a stranger": (lambda ids, keys, vectors: Embedded([ids[0], "stranger"], keys, vectors), "'stranger'"),
    "empty keys": (lambda ids, keys, vectors: Embedded(ids, ["", ""], vectors), "key '' of 'item3'"),
    "short labels": (lambda ids, keys, vectors: Embedded(ids, keys, vectors, labels={"symbol": ["x"]}), "label 'symbol' has 1"),
    "other dim": (lambda ids, keys, vectors: Embedded(ids, keys, vectors[:, :2]), "2-dimensional"),
    "raises": (raising, "RuntimeError: CUDA out of memory"),
}


@pytest.mark.parametrize("case", BROKEN)
def test_a_provider_breaking_its_contract_is_one_line_naming_it_and_the_rows(tmp_path, case):
    broken, fragment = BROKEN[case]
    with pytest.raises(PluginError) as error:
        run(Numbers(broken), tmp_path)
    message = str(error.value)
    assert "\n" not in message
    assert "provider 'numbers'" in message and "rows 3–4" in message and fragment in message, message


def test_after_a_provider_error_the_finished_batches_resume_to_the_full_store(tmp_path):
    with pytest.raises(PluginError, match="re-run"):
        run(Numbers(raising), tmp_path)
    store = run(Numbers(), tmp_path)
    values = np.arange(1, 7)
    np.testing.assert_array_equal(store.vectors(), np.outer(values, [1, 2, 3]).astype(np.float32))


@pytest.mark.parametrize("bad_value", [np.nan, np.inf])
def test_non_finite_vectors_become_recorded_failures_not_a_store_that_fails_verify(tmp_path, bad_value):
    def one_bad_vector(ids, keys, vectors):
        vectors[1, 2] = bad_value
        return Embedded(ids, keys, vectors)

    store = run(Numbers(one_bad_vector, row=4), tmp_path)
    assert list(store.input_ids) == ["item1", "item2", "item3", "item5", "item6"]
    assert np.isfinite(store.vectors()).all()
    [failure] = store.failures()
    assert failure["input_id"] == "item4" and "NaN or inf" in failure["reason"]
    assert store.verify() == []


def test_a_vector_that_overflows_float16_is_a_failure_saying_which_dtype_to_use(tmp_path):
    def huge(ids, keys, vectors):
        vectors[0] *= 1e6
        return Embedded(ids, keys, vectors)

    store = run(Numbers(huge), tmp_path, dtype="float16")
    [failure] = store.failures()
    assert failure["input_id"] == "item3" and "float16" in failure["reason"] and "--dtype float32" in failure["reason"]
    assert np.isfinite(store.vectors()).all() and store.verify() == []


class Recorded(Numbers):
    """Reports provenance facts of the types providers naturally have at hand (paths, numpy numbers)."""

    def __init__(self, facts):
        super().__init__()
        self.facts = facts

    def provenance(self):
        return self.facts


def test_provenance_with_paths_and_numpy_numbers_is_recorded_as_plain_values(tmp_path):
    facts = {"weights": tmp_path / "w.bin", "temperature": np.float32(0.5), "layers": np.int64(6), "shape": np.arange(2)}
    store = run(Recorded(facts), tmp_path)
    assert store.manifest["provenance"] == {"weights": str(tmp_path / "w.bin"), "temperature": 0.5, "layers": 6, "shape": [0, 1]}
    assert store.verify() == []


def test_provenance_that_is_not_a_mapping_is_one_line_naming_the_provider(tmp_path):
    with pytest.raises(PluginError, match=r"provider 'numbers'.*provenance\(\) returned list"):
        run(Recorded(["cuda"]), tmp_path)


class NumbersV2(Numbers):
    """The same provider after its plugin was upgraded: other vectors, a new version."""

    version = "2"

    def embed(self, items):
        result = super().embed(items)
        return Embedded(result.input_ids, result.keys, result.vectors * 10, result.failures)


@pytest.mark.parametrize("interrupted", [True, False])
def test_a_store_from_another_provider_version_is_neither_resumed_nor_called_complete(tmp_path, interrupted):
    if interrupted:
        with pytest.raises(PluginError):
            run(Numbers(raising, row=5), tmp_path)
    else:
        run(Numbers(), tmp_path)
    with pytest.raises(StoreError) as error:
        run(NumbersV2(), tmp_path)
    assert "provider 'numbers' version 0" in str(error.value) and "version 2" in str(error.value)
    assert "--overwrite" in str(error.value)


class LoadsInCheckpointFiles(Numbers):
    """Loads its model in checkpoint_files (so bad settings fail before a store exists), and the load breaks."""

    def checkpoint_files(self):
        raise KeyError("hidden_size")


def test_a_provider_whose_checkpoint_files_raises_is_one_line_naming_it_and_leaves_no_store(tmp_path):
    with pytest.raises(PluginError, match=r"provider 'numbers'.*checkpoint_files\(\) raised KeyError: 'hidden_size'"):
        run(LoadsInCheckpointFiles(), tmp_path)
    assert not (tmp_path / "numbers.zarr").exists()
