"""The TF tensor-bundle reader, on musicnn's real checkpoints and on a tiny bundle written here.

The writer below follows TF's `tensor_bundle` / `table_builder` layout (prefix-compressed keys,
restart points, several data blocks, an index block, the 48-byte footer), so round trips check
the parts of the format the real checkpoints happen not to exercise.
"""

from __future__ import annotations

import importlib.util
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from catalog.encoders import EncoderError
from catalog.encoders.tf_checkpoint import TABLE_MAGIC, read_checkpoint

_SPEC = importlib.util.find_spec("musicnn")
MUSICNN_DIR = Path(next(iter(_SPEC.submodule_search_locations))) if _SPEC else None


@pytest.fixture
def musicnn_dir() -> Path:
    if MUSICNN_DIR is None or not (MUSICNN_DIR / "MTT_musicnn" / ".index").is_file():
        pytest.skip("musicnn checkpoints not installed (pip install --no-deps musicnn==0.1.0)")
    return MUSICNN_DIR


# --- a minimal tensor-bundle writer ------------------------------------------------------
TRAILER = b"\x00" + bytes(4)  # compression type 0 (none), then a crc32c the reader skips
DTYPE_ENUMS = {"<f4": 1, "<f8": 2, "<i4": 3, "<i8": 9, "|b1": 10, "<f2": 19}


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def field(number: int, value: int | bytes) -> bytes:
    if isinstance(value, bytes):
        return varint(number << 3 | 2) + varint(len(value)) + value
    return varint(number << 3) + varint(value)


def block(pairs: list[tuple[bytes, bytes]], restart_interval: int) -> bytes:
    out, restarts, last = bytearray(), [], b""
    for i, (key, value) in enumerate(pairs):
        shared = 0
        if i % restart_interval:
            while shared < min(len(key), len(last)) and key[shared] == last[shared]:
                shared += 1
        else:
            restarts.append(len(out))
        out += varint(shared) + varint(len(key) - shared) + varint(len(value))
        out += key[shared:] + value
        last = key
    out += b"".join(struct.pack("<I", r) for r in restarts) + struct.pack("<I", len(restarts))
    return bytes(out)


def write_bundle(
    prefix: str,
    tensors: dict[str, np.ndarray],
    entries_per_block: int = 2,
    shapes: dict[str, tuple[int, ...]] | None = None,  # declare other shapes than the arrays'
):
    data, entries = bytearray(), {b"": field(1, 1)}  # header: num_shards = 1, little-endian
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        declared = (shapes or {}).get(name, array.shape)
        shape = b"".join(field(2, field(1, d)) for d in declared)
        entry = field(1, DTYPE_ENUMS[array.dtype.str]) + field(2, shape)
        entry += field(4, len(data)) + field(5, array.nbytes)  # shard_id 0 is the default
        entries[name.encode()] = entry
        data += array.tobytes()
    Path(prefix + ".data-00000-of-00001").write_bytes(bytes(data))

    table, index = bytearray(), []
    for start in range(0, len(entries), entries_per_block):
        chunk = sorted(entries.items())[start : start + entries_per_block]
        contents = block(chunk, restart_interval=3)
        index.append((chunk[-1][0], varint(len(table)) + varint(len(contents))))
        table += contents + TRAILER
    handles = b""
    for contents in (block([], 1), block(index, 1)):  # metaindex (empty), then index
        handles += varint(len(table)) + varint(len(contents))
        table += contents + TRAILER
    footer = handles.ljust(40, b"\0") + struct.pack("<Q", TABLE_MAGIC)
    Path(prefix + ".index").write_bytes(bytes(table + footer))


# --- the real checkpoints -----------------------------------------------------------------
def test_reads_musicnn_checkpoint(musicnn_dir):
    tensors = read_checkpoint(musicnn_dir / "MTT_musicnn")

    # 64 network variables, 2 Adam slots for each of the 42 trainable ones, 2 Adam powers
    assert len(tensors) == 150
    assert tensors["conv2d/kernel"].shape == (7, 38, 1, 204)  # timbral 7 x 0.4*96
    assert tensors["conv2d_1/kernel"].shape == (7, 67, 1, 204)
    assert tensors["conv2d_2/kernel"].shape == (128, 1, 1, 51)  # temporal
    assert tensors["conv2d_5/kernel"].shape == (7, 561, 1, 64)  # first mid-end layer
    assert tensors["batch_normalization_9/moving_variance"].shape == (1506,)
    assert tensors["dense/kernel"].shape == (1506, 200)
    assert tensors["dense_1/kernel"].shape == (200, 50)
    assert tensors["beta1_power"].shape == ()
    assert all(t.dtype == np.float32 and np.isfinite(t).all() for t in tensors.values())
    assert (tensors["batch_normalization_3/moving_variance"] > 0).all()
    # every byte of the data shard belongs to exactly one tensor
    data = musicnn_dir / "MTT_musicnn" / ".data-00000-of-00001"
    assert sum(t.nbytes for t in tensors.values()) == data.stat().st_size


def test_reads_vgg_checkpoint(musicnn_dir):
    tensors = read_checkpoint(str(musicnn_dir / "MSD_vgg") + "/")  # the prefix spelling

    assert len(tensors) == 86
    assert tensors["1CNN/kernel"].shape == (3, 3, 1, 128)
    assert tensors["5CNN/kernel"].shape == (3, 3, 128, 128)
    assert tensors["dense/kernel"].shape == (256, 50)


def real_copy(musicnn_dir: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "MTT_musicnn"
    shutil.copytree(musicnn_dir / "MTT_musicnn", copy)
    return copy


@pytest.mark.parametrize("cut", [1, 30, 2000])
def test_truncated_index_is_reported(musicnn_dir, tmp_path, cut):
    copy = real_copy(musicnn_dir, tmp_path)
    index = copy / ".index"
    index.write_bytes(index.read_bytes()[:-cut])

    with pytest.raises(EncoderError, match="corrupt TF checkpoint index"):
        read_checkpoint(copy)


def test_compressed_block_is_refused(musicnn_dir, tmp_path):
    copy = real_copy(musicnn_dir, tmp_path)
    index = copy / ".index"
    raw = bytearray(index.read_bytes())
    footer = raw[-48:]
    pos, values = 0, []
    for _ in range(4):  # metaindex offset, size, index offset, size
        value = shift = 0
        while True:
            byte = footer[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        values.append(value)
    raw[values[2] + values[3]] = 1  # the index block's trailer: snappy
    index.write_bytes(bytes(raw))

    with pytest.raises(EncoderError, match="compressed"):
        read_checkpoint(copy)


def test_truncated_or_missing_data_is_reported(musicnn_dir, tmp_path):
    copy = real_copy(musicnn_dir, tmp_path)
    data = copy / ".data-00000-of-00001"
    data.write_bytes(data.read_bytes()[:-4])
    with pytest.raises(EncoderError, match="runs past the end of data shard"):
        read_checkpoint(copy)

    data.unlink()
    with pytest.raises(EncoderError, match="data shard not found"):
        read_checkpoint(copy)


def test_missing_checkpoint_is_reported(tmp_path):
    with pytest.raises(EncoderError, match="index not found"):
        read_checkpoint(tmp_path / "nothing")


# --- round trips through the writer above ------------------------------------------------
def tiny_tensors() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    return {
        "layer/kernel": rng.normal(size=(3, 2, 1, 4)).astype(np.float32),
        "layer/bias": np.arange(4, dtype=np.float32),
        "layer/kernel/Adam": rng.normal(size=(3, 2, 1, 4)).astype(np.float32),
        "layer_1/moving_mean": rng.normal(size=(300,)),  # float64
        "global_step": np.array(12345678901, dtype=np.int64),
        "counts": np.array([[1, -2], [3, 4]], dtype=np.int32),
        "mask": np.array([True, False, True]),
        "half": np.array([1.5, -65504.0], dtype=np.float16),
        "empty": np.zeros((0, 3), dtype=np.float32),
    }


@pytest.mark.parametrize("entries_per_block", [1, 4, 100])
def test_round_trip(tmp_path, entries_per_block):
    tensors = tiny_tensors()
    write_bundle(str(tmp_path / "model.ckpt"), tensors, entries_per_block)

    back = read_checkpoint(tmp_path / "model.ckpt")

    assert sorted(back) == sorted(tensors)
    for name, tensor in tensors.items():
        assert back[name].dtype == tensor.dtype, name
        np.testing.assert_array_equal(back[name], tensor)
    assert back["layer/bias"].flags.writeable  # a copy, not a view of the file buffer


def test_bad_magic_and_bad_sizes_are_reported(tmp_path):
    prefix = str(tmp_path / "model.ckpt")
    write_bundle(prefix, {"w": np.ones((2, 2), dtype=np.float32)})
    index = Path(prefix + ".index")
    index.write_bytes(index.read_bytes()[:-1] + b"\x00")
    with pytest.raises(EncoderError, match="bad table magic"):
        read_checkpoint(prefix)

    # an entry whose declared shape (2 x 2 floats) does not match its 12 bytes
    write_bundle(prefix, {"w": np.ones(3, dtype=np.float32)}, shapes={"w": (2, 2)})
    with pytest.raises(EncoderError, match="do not fit shape"):
        read_checkpoint(prefix)
