"""An interrupted extraction (SIGKILL or Ctrl-C) resumes into exactly the store an uninterrupted run writes."""

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import zarr

from embhub.errors import PluginError, StoreError
from embhub.extract import extract
from embhub.plugins import load_plugins
from embhub.provider import Embedded, Item, Provider
from embhub.registry import ModelSpec
from embhub.store import EmbeddingStore
from embhub.store_writer import StoreWriter
from tests.support.cli import run_cli
from tests.support.packages import build_plugin_package, pip_install_target

SLOW_PROVIDER = '''
import time
from dataclasses import dataclass
from pathlib import Path
from dataclasses import dataclass
import numpy as np
from embhub.hookspecs import hookimpl
from embhub.provider import Embedded, Failure, Provider


class SlowCounter(Provider):
    """Deterministic vectors from the value's integer, slowly, failing on multiples of 7."""
    name = "slowcounter"
    entity = "number"
    id_namespace = "integer"
    key_namespace = "integer"

    @dataclass
    class Parameters:
        delay: float = 0.15

    @property
    def dim(self):
        return 5

    def embed(self, items):
        time.sleep(self.parameters.delay)
        ids, keys, vectors, failures = [], [], [], []
        for item in items:
            n = int(item.value)
            if n % 7 == 0:
                failures.append(Failure(item.input_id, f"{n} is a multiple of 7"))
                continue
            ids.append(item.input_id)
            keys.append(f"n{n}")
            vectors.append(np.sin(np.arange(5) * n + 0.5).astype(np.float32))
        return Embedded(ids, keys, np.array(vectors, dtype=np.float32).reshape(-1, 5), failures,
                        labels={"parity": ["even" if int(k[1:]) % 2 == 0 else "odd" for k in keys]})


@hookimpl
def register_providers(register):
    register(SlowCounter)


@hookimpl
def register_models(register):
    register("slow", provider="slowcounter")
'''

N_ITEMS, BATCH = 120, 8


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("slow")
    site = root / "site"
    pip_install_target(build_plugin_package(root, "embhub-slow", "embhub_slow", "slow", SLOW_PROVIDER), site)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}


@pytest.fixture
def numbers(tmp_path):
    path = tmp_path / "numbers.csv"
    path.write_text("id,value\n" + "".join(f"item{i},{i}\n" for i in range(1, N_ITEMS + 1)))
    return path


def command(numbers, out):
    return [sys.executable, "-m", "embhub", "extract", "-m", "slow", "-i", str(numbers), "-o", str(out), "--batch-size", str(BATCH)]


def done_batches(out):
    try:
        status = zarr.open_group(str(out), mode="r")["_staging/status"][:]
    except Exception:
        return 0
    return int((status.reshape(-1, BATCH) != 0).all(axis=1).sum())


def start_and_interrupt(numbers, out, env, sig):
    # a test run started in the background of a non-interactive shell inherits SIGINT ignored; a user's
    # terminal delivers it, so the child gets the default disposition back
    process = subprocess.Popen(command(numbers, out), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 60
    while done_batches(out) < 3:
        assert process.poll() is None, process.communicate()
        assert time.time() < deadline, "extraction made no progress"
        time.sleep(0.05)
    process.send_signal(sig)
    stdout, stderr = process.communicate(timeout=30)
    return process.returncode, stdout, stderr


def snapshot(out):
    store = EmbeddingStore.open(out)
    return {
        "ids": list(store.ids),
        "input_ids": list(store.input_ids),
        "parity": list(store.labels("parity")),
        "vectors": store.vectors(),
        "failures": store.failures(),
        "content": store.manifest["content_sha256"],
        "counts": store.manifest["counts"],
    }


def assert_same(a, b):
    for key in ("ids", "input_ids", "parity", "failures", "content", "counts"):
        assert a[key] == b[key], key
    np.testing.assert_array_equal(a["vectors"], b["vectors"])


@pytest.fixture
def reference(numbers, tmp_path, env):
    out = tmp_path / "reference.zarr"
    subprocess.run(command(numbers, out), env=env, check=True, capture_output=True)
    return snapshot(out)


@pytest.mark.slow
def test_sigkill_then_rerun_equals_uninterrupted_run(numbers, tmp_path, env, reference):
    out = tmp_path / "killed.zarr"
    code, _, _ = start_and_interrupt(numbers, out, env, signal.SIGKILL)
    assert code == -signal.SIGKILL
    finished = done_batches(out)
    assert 3 <= finished < N_ITEMS // BATCH
    with pytest.raises(Exception, match="incomplete"):
        EmbeddingStore.open(out)
    partial = EmbeddingStore.open(out, allow_incomplete=True)
    assert len(partial.ids) == len(set(partial.ids)) > 0
    rerun = subprocess.run(command(numbers, out), env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert f"resumed after {finished} finished batches" in rerun.stdout.replace("\n", " ")
    result = snapshot(out)
    assert_same(result, reference)
    assert len(result["ids"]) + len(result["failures"]) == N_ITEMS
    assert len(result["failures"]) == N_ITEMS // 7


@pytest.mark.slow
def test_ctrl_c_exits_cleanly_and_resumes(numbers, tmp_path, env, reference):
    out = tmp_path / "interrupted.zarr"
    code, _, stderr = start_and_interrupt(numbers, out, env, signal.SIGINT)
    assert code == 130, f"exit {code} after {done_batches(out)} of {N_ITEMS // BATCH} batches: {stderr}"
    assert "interrupted" in stderr and "resume" in stderr and "Traceback" not in stderr
    rerun = subprocess.run(command(numbers, out), env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert_same(snapshot(out), reference)


def test_rerunning_a_complete_extraction_changes_nothing(numbers, tmp_path, env, reference):
    out = tmp_path / "reference-again.zarr"
    subprocess.run(command(numbers, out), env=env, check=True, capture_output=True)
    before = snapshot(out)
    again = subprocess.run(command(numbers, out), env=env, capture_output=True, text=True)
    assert again.returncode == 0 and "already complete" in again.stdout
    assert_same(snapshot(out), before)


def test_different_inputs_into_an_existing_store_are_refused(numbers, tmp_path, env):
    out = tmp_path / "s.zarr"
    subprocess.run(command(numbers, out), env=env, check=True, capture_output=True)
    numbers.write_text("id,value\nitem1,1\n")
    again = subprocess.run(command(numbers, out), env=env, capture_output=True, text=True)
    assert again.returncode == 1
    assert again.stderr.strip().startswith("error: store") and "--overwrite" in again.stderr


class Squares(Provider):
    """Learns its dimension from the first batch, as transformer providers do; labels each row."""

    name = "squares"
    entity = "number"
    id_namespace = "integer"
    key_namespace = "integer"

    def embed(self, items):
        values = [int(item.value) for item in items]
        vectors = np.array([[v, v * v, -v] for v in values], dtype=np.float32).reshape(-1, 3)
        return Embedded([i.input_id for i in items], [f"n{v}" for v in values], vectors,
                        labels={"square": [str(v * v) for v in values]}, counts={"odd": sum(v % 2 for v in values)})


class Died(BaseException):
    """Stands for SIGKILL: nothing after it runs."""


def extract_killed_after_the_first_batch(spec, provider, items, out, monkeypatch, batch_size=4):
    """An extraction that dies, as a kill would, once its first batch is written."""
    write_batch = StoreWriter.write_batch

    def die_after_the_first_batch(writer, batch, *args):
        if batch > 0:
            raise Died
        write_batch(writer, batch, *args)

    monkeypatch.setattr(StoreWriter, "write_batch", die_after_the_first_batch)
    with pytest.raises(Died):
        extract(spec, provider, items, out, plugins=load_plugins(), batch_size=batch_size)
    monkeypatch.setattr(StoreWriter, "write_batch", write_batch)


def whole_and_resumed(spec, new_provider, items, tmp_path, monkeypatch, batch_size):
    """The same extraction twice: uninterrupted, and killed after its first batch then resumed, each run by a
    fresh provider (``new_provider()``) as a new process would; returns the two stores."""
    whole, resumed = tmp_path / "whole.zarr", tmp_path / "resumed.zarr"
    extract(spec, new_provider(), items, whole, plugins=load_plugins(), batch_size=batch_size)
    extract_killed_after_the_first_batch(spec, new_provider(), items, resumed, monkeypatch, batch_size=batch_size)
    extract(spec, new_provider(), items, resumed, plugins=load_plugins(), batch_size=batch_size)
    return EmbeddingStore.open(whole), EmbeddingStore.open(resumed)


@pytest.mark.parametrize("recorded", ["dim", "labels", "counters"])
def test_a_kill_between_creating_a_staging_array_and_recording_it_resumes_to_the_full_store(tmp_path, monkeypatch, recorded):
    items = [Item(f"item{i}", str(i), i) for i in range(1, 11)]
    spec = ModelSpec("squares", "squares")
    update = StoreWriter._update_manifest

    def die_when_recording(writer, **changes):
        if recorded in changes:
            raise Died
        update(writer, **changes)

    out = tmp_path / "squares.zarr"
    monkeypatch.setattr(StoreWriter, "_update_manifest", die_when_recording)
    with pytest.raises(Died):
        extract(spec, Squares(), items, out, plugins=load_plugins(), batch_size=4)
    monkeypatch.setattr(StoreWriter, "_update_manifest", update)
    extract(spec, Squares(), items, out, plugins=load_plugins(), batch_size=4)
    store = EmbeddingStore.open(out)
    values = np.arange(1, 11)
    np.testing.assert_array_equal(store.vectors(), np.stack([values, values**2, -values], axis=1).astype(np.float32))
    assert store.dim == 3
    assert list(store.labels("square")) == [str(v * v) for v in values]
    assert store.manifest["provenance"]["odd"] == int((values % 2).sum())


def test_a_kill_before_the_first_manifest_is_written_resumes_too(tmp_path, monkeypatch):
    """StoreWriter.create writes zarr.json and the staging area before the manifest; killed in between,
    the same command must start the extraction, not call the folder 'not an embhub store'."""
    items = [Item(f"item{i}", str(i), i) for i in range(1, 11)]
    spec = ModelSpec("squares", "squares")
    create_group = zarr.Group.create_group

    def die_after_creating(group, *args, **kwargs):
        create_group(group, *args, **kwargs)
        raise Died

    out = tmp_path / "squares.zarr"
    monkeypatch.setattr(zarr.Group, "create_group", die_after_creating)
    with pytest.raises(Died):
        extract(spec, Squares(), items, out, plugins=load_plugins(), batch_size=4)
    monkeypatch.setattr(zarr.Group, "create_group", create_group)
    assert (out / "_staging").is_dir()
    extract(spec, Squares(), items, out, plugins=load_plugins(), batch_size=4)
    values = np.arange(1, 11)
    np.testing.assert_array_equal(EmbeddingStore.open(out).vectors(), np.stack([values, values**2, -values], axis=1))


def test_resuming_over_a_damaged_staged_chunk_is_one_line_naming_the_fix(tmp_path, monkeypatch):
    items = [Item(f"item{i}", str(i), i) for i in range(1, 11)]
    spec = ModelSpec("squares", "squares")
    out = tmp_path / "squares.zarr"
    extract_killed_after_the_first_batch(spec, Squares(), items, out, monkeypatch)
    chunk = next(p for p in (out / "_staging" / "vectors").rglob("*") if p.is_file() and p.name != "zarr.json")
    chunk.write_bytes(b"garbage")
    with pytest.raises(StoreError, match=r"squares\.zarr is damaged: staged 'vectors' cannot be read .*pass --overwrite"):
        extract(spec, Squares(), items, out, plugins=load_plugins(), batch_size=4)
    extract(spec, Squares(), items, out, plugins=load_plugins(), batch_size=4, overwrite=True)
    values = np.arange(1, 11)
    np.testing.assert_array_equal(EmbeddingStore.open(out).vectors(), np.stack([values, values**2, -values], axis=1))


class ShiftedSquares(Squares):
    """Squares shifted by the number written in a data file, as weights or a FASTA decide a model's vectors."""

    name = "shifted-squares"

    @dataclass
    class Parameters:
        shift_file: str = ""

    def embed(self, items):
        result = super().embed(items)
        result.vectors = result.vectors + float(Path(self.parameters.shift_file).read_text())
        return result

    def checkpoint_files(self):
        return [Path(self.parameters.shift_file)]


def test_a_store_is_not_resumed_or_called_complete_after_its_checkpoint_files_changed(tmp_path, monkeypatch):
    """Same model name and parameters, edited weights or data file: resuming would mix two models' vectors in
    one store, and 'already complete' would hide that the store no longer matches the files."""
    items = [Item(f"item{i}", str(i), i) for i in range(1, 11)]
    shift = tmp_path / "shift.txt"
    shift.write_text("0")
    spec = ModelSpec("shifted", "shifted-squares", parameters={"shift_file": str(shift)})
    provider = ShiftedSquares(ShiftedSquares.Parameters(str(shift)))
    stopped, finished = tmp_path / "stopped.zarr", tmp_path / "finished.zarr"
    extract(spec, provider, items, finished, plugins=load_plugins(), batch_size=4)
    extract_killed_after_the_first_batch(spec, provider, items, stopped, monkeypatch)
    shift.write_text("100")
    for out in (stopped, finished):
        with pytest.raises(StoreError, match=rf"{out.name} was extracted with other contents of .*shift\.txt.*--overwrite"):
            extract(spec, provider, items, out, plugins=load_plugins(), batch_size=4)
    extract(spec, provider, items, stopped, plugins=load_plugins(), batch_size=4, overwrite=True)
    values = np.arange(1, 11)
    expected = np.stack([values, values**2, -values], axis=1) + 100
    np.testing.assert_array_equal(EmbeddingStore.open(stopped).vectors(), expected)


def test_resuming_with_another_batch_size_says_so_instead_of_ignoring_it(tmp_path, monkeypatch):
    items = [Item(f"item{i}", str(i), i) for i in range(1, 11)]
    spec = ModelSpec("squares", "squares")
    out = tmp_path / "squares.zarr"
    extract_killed_after_the_first_batch(spec, Squares(), items, out, monkeypatch)
    with pytest.raises(StoreError, match=r"was started with batch size 4; .*--overwrite to start again with batch size 2"):
        extract(spec, Squares(), items, out, plugins=load_plugins(), batch_size=2)
    result = extract(spec, Squares(), items, out, plugins=load_plugins())
    assert result.resumed_batches == 1 and result.manifest["batch_size"] == 4
    values = np.arange(1, 11)
    np.testing.assert_array_equal(EmbeddingStore.open(out).vectors(), np.stack([values, values**2, -values], axis=1))


def test_an_interrupted_store_reports_the_rows_it_has(tmp_path, monkeypatch):
    """The manifest counts rows only when an extraction finishes; until then readers count the staged ones."""
    items = [Item(f"item{i}", str(i), i) for i in range(1, 11)]
    out = tmp_path / "stores" / "squares.zarr"
    extract_killed_after_the_first_batch(ModelSpec("squares", "squares"), Squares(), items, out, monkeypatch)
    with pytest.raises(StoreError, match=r"incomplete \(4 of 10 items done\)"):
        EmbeddingStore.open(out)
    partial = EmbeddingStore.open(out, allow_incomplete=True)
    assert len(partial) == len(partial.ids) == 4 and partial.counts == {"done": 4, "failed": 0}
    listing = run_cli("stores", "list", "--dir", out.parent).stdout
    assert [line.split("│")[5].strip() for line in listing.splitlines() if "squares.zarr" in line] == ["4"]
    assert "4 × 3" in run_cli("stores", "show", out).stdout


def test_a_batch_tally_counts_once_when_its_batch_is_redone(tmp_path, monkeypatch):
    """Killed after a batch's tally is written but before its status: the batch is redone and its tally replaced."""
    items = [Item(f"item{i}", str(i), i) for i in range(1, 11)]
    spec = ModelSpec("squares", "squares")
    out = tmp_path / "squares.zarr"
    write_batch = StoreWriter.write_batch

    def die_before_the_second_status(writer, batch, batch_items, result):
        if batch == 1:
            writer._ensure_counter("odd")[batch] = result.counts["odd"]
            raise Died
        write_batch(writer, batch, batch_items, result)

    monkeypatch.setattr(StoreWriter, "write_batch", die_before_the_second_status)
    with pytest.raises(Died):
        extract(spec, Squares(), items, out, plugins=load_plugins(), batch_size=4)
    monkeypatch.setattr(StoreWriter, "write_batch", write_batch)
    extract(spec, Squares(), items, out, plugins=load_plugins(), batch_size=4)
    assert EmbeddingStore.open(out).manifest["provenance"]["odd"] == 5


@pytest.mark.parametrize("counts", [{"odd": -1}, {"odd": 1.5}, {"odd": True}, {"two words": 1}])
def test_a_tally_that_is_not_a_count_is_a_provider_bug_in_one_line(tmp_path, counts):
    class BadTally(Squares):
        def embed(self, items):
            result = super().embed(items)
            result.counts = counts
            return result

    items = [Item(f"item{i}", str(i), i) for i in range(1, 4)]
    with pytest.raises(PluginError, match=r"provider 'squares', rows 1–3: broke its contract: count .*non-negative integers"):
        extract(ModelSpec("squares", "squares"), BadTally(), items, tmp_path / "bad.zarr", plugins=load_plugins())
