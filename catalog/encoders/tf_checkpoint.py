"""Read TensorFlow tensor-bundle checkpoints (`<prefix>.index` + `<prefix>.data-*`) without TF.

Pretrained networks we port (musicnn) ship only TF1 checkpoints, and TensorFlow is a heavy,
version-pinned dependency we do not want at runtime. The format is small: the index is a
LevelDB-style SSTable mapping each variable name to a BundleEntryProto (dtype, shape, shard,
offset, size); the data shards hold the raw little-endian tensor bytes.

Checksums (block and tensor crc32c) are not verified; sizes, bounds and the table magic are.
Only uncompressed tables and unpartitioned (unsliced) variables are supported.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from catalog.encoders import EncoderError

TABLE_MAGIC = 0xDB4775248B80FB57  # kTableMagicNumber, little-endian fixed64 at the very end
FOOTER_SIZE = 48  # two BlockHandles padded to 40 bytes, then the magic
BLOCK_TRAILER_SIZE = 5  # compression type byte + masked crc32c
# tensorflow/core/framework/types.proto DataType -> numpy (little-endian)
DTYPES = {
    1: "<f4",  # DT_FLOAT
    2: "<f8",  # DT_DOUBLE
    3: "<i4",  # DT_INT32
    4: "u1",  # DT_UINT8
    5: "<i2",  # DT_INT16
    6: "i1",  # DT_INT8
    9: "<i8",  # DT_INT64
    10: "?",  # DT_BOOL
    17: "<u2",  # DT_UINT16
    19: "<f2",  # DT_HALF
    22: "<u4",  # DT_UINT32
    23: "<u8",  # DT_UINT64
}


class _Corrupt(Exception):
    pass


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise _Corrupt("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return result, pos


def _proto_fields(buf: bytes):
    """Yield (field number, wire type, value) of a protobuf message; value is int or bytes."""
    pos = 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        field, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = int.from_bytes(buf[pos : pos + 8], "little"), pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + length], pos + length
        elif wire == 5:
            value, pos = int.from_bytes(buf[pos : pos + 4], "little"), pos + 4
        else:
            raise _Corrupt(f"unsupported protobuf wire type {wire}")
        if pos > len(buf):
            raise _Corrupt("truncated protobuf field")
        yield field, wire, value


def _bundle_entry(buf: bytes) -> dict:
    """BundleEntryProto: dtype=1, shape=2 (TensorShapeProto), shard_id=3, offset=4, size=5,
    crc32c=6, slices=7."""
    entry = {"dtype": 0, "shape": [], "shard_id": 0, "offset": 0, "size": 0, "sliced": False}
    for field, _, value in _proto_fields(buf):
        if field == 1:
            entry["dtype"] = value
        elif field == 2:  # TensorShapeProto: dim=2 {size=1, name=2}, unknown_rank=3
            for dim_field, _, dim in _proto_fields(value):
                if dim_field == 2:
                    sizes = [v for f, _, v in _proto_fields(dim) if f == 1]
                    entry["shape"].append(sizes[0] if sizes else 0)
                elif dim_field == 3 and dim:
                    raise _Corrupt("tensor of unknown rank")
        elif field in (3, 4, 5):
            entry[{3: "shard_id", 4: "offset", 5: "size"}[field]] = value
        elif field == 7:
            entry["sliced"] = True
    return entry


def _block(data: bytes, offset: int, size: int) -> list[tuple[bytes, bytes]]:
    """Decode one table block (prefix-compressed entries, restart array) into (key, value)s."""
    end = offset + size
    if offset < 0 or end + BLOCK_TRAILER_SIZE > len(data) or size < 4:
        raise _Corrupt(f"block at {offset} (+{size}) runs past the end of the file")
    if data[end] != 0:
        raise _Corrupt(f"block at {offset} is compressed (type {data[end]}); only 0 is supported")
    block = data[offset:end]
    (num_restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    limit = len(block) - 4 - 4 * num_restarts
    if limit < 0:
        raise _Corrupt(f"block at {offset} has a bad restart count {num_restarts}")
    entries, pos, key = [], 0, b""
    while pos < limit:
        shared, pos = _varint(block, pos)
        non_shared, pos = _varint(block, pos)
        value_len, pos = _varint(block, pos)
        if shared > len(key) or pos + non_shared + value_len > limit:
            raise _Corrupt(f"bad entry in block at {offset}")
        key = key[:shared] + block[pos : pos + non_shared]
        pos += non_shared
        entries.append((key, block[pos : pos + value_len]))
        pos += value_len
    return entries


def _table(data: bytes) -> list[tuple[bytes, bytes]]:
    """All (key, value) pairs of an SSTable, in key order."""
    if len(data) < FOOTER_SIZE:
        raise _Corrupt("file is shorter than a table footer")
    (magic,) = struct.unpack_from("<Q", data, len(data) - 8)
    if magic != TABLE_MAGIC:
        raise _Corrupt(f"bad table magic {magic:#x}")
    footer = data[len(data) - FOOTER_SIZE : len(data) - 8]
    _meta_offset, pos = _varint(footer, 0)
    _meta_size, pos = _varint(footer, pos)
    index_offset, pos = _varint(footer, pos)
    index_size, pos = _varint(footer, pos)
    pairs = []
    for _, handle in _block(data, index_offset, index_size):
        block_offset, pos = _varint(handle, 0)
        block_size, _ = _varint(handle, pos)
        pairs.extend(_block(data, block_offset, block_size))
    return pairs


def _prefix(path: str | os.PathLike) -> str:
    prefix = os.fspath(path)
    # A directory stands for the prefix "<dir>/" (files "<dir>/.index", as musicnn ships them).
    return os.path.join(prefix, "") if os.path.isdir(prefix) else prefix


def read_checkpoint(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every tensor of the checkpoint at `path` (a prefix, or a directory meaning `<dir>/`)."""
    prefix = _prefix(path)
    index_path = Path(prefix + ".index")
    if not index_path.is_file():
        raise EncoderError(f"TF checkpoint index not found: {index_path}")
    try:
        pairs = _table(index_path.read_bytes())
        num_shards, entries = 1, {}
        for key, value in pairs:
            if key == b"":  # BundleHeaderProto: num_shards=1, endianness=2 (0 = little)
                header = {f: v for f, _, v in _proto_fields(value)}
                num_shards = header.get(1, 1)
                if header.get(2, 0) != 0:
                    raise _Corrupt("big-endian bundles are not supported")
            else:
                entries[key.decode("utf-8")] = _bundle_entry(value)
    except (_Corrupt, struct.error, UnicodeDecodeError) as exc:
        raise EncoderError(f"corrupt TF checkpoint index {index_path}: {exc}") from exc

    shards: dict[int, bytes] = {}
    tensors = {}
    for name, entry in entries.items():
        where = f"variable '{name}' in {prefix}"
        if entry["sliced"]:
            raise EncoderError(f"{where} is partitioned (sliced); not supported")
        if entry["dtype"] not in DTYPES:
            raise EncoderError(f"{where} has unsupported dtype enum {entry['dtype']}")
        shard = entry["shard_id"]
        if shard not in shards:
            shard_path = Path(f"{prefix}.data-{shard:05d}-of-{num_shards:05d}")
            if not shard_path.is_file():
                raise EncoderError(f"TF checkpoint data shard not found: {shard_path}")
            shards[shard] = shard_path.read_bytes()
        dtype = np.dtype(DTYPES[entry["dtype"]])
        shape = tuple(entry["shape"])
        offset, size = entry["offset"], entry["size"]
        if size != dtype.itemsize * int(np.prod(shape, dtype=np.int64)):
            raise EncoderError(f"{where}: {size} bytes do not fit shape {shape} of {dtype}")
        if offset + size > len(shards[shard]):
            raise EncoderError(f"{where} runs past the end of data shard {shard} (truncated?)")
        raw = np.frombuffer(shards[shard], dtype=dtype, count=size // dtype.itemsize, offset=offset)
        tensors[name] = raw.reshape(shape).astype(dtype.newbyteorder("="), copy=True)
    return tensors
