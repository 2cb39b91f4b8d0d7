"""Which partition each key of a column belongs on: Kafka's default partitioner (murmur2)
on whole Arrow columns, for the replay and verify.

``partitions_of`` runs murmur2 with Arrow's integer kernels, on 32-bit unsigned integers,
which wrap on overflow as the Java original's ints do; a unit test checks it against
``agents.partitions.default_partition``. Apart from ``agents.partitions`` because a worker
hashes one key at a time and need not load Arrow (about 40 MB of its memory).
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

_U32 = pa.uint32()
_SEED = 0x9747B28C
_M = pa.scalar(0x5BD1E995, _U32)  # typed: a plain int would widen the arithmetic


def _u32(value: int) -> pa.Scalar:
    return pa.scalar(value, _U32)


def partitions_of(keys: pa.Array, partitions: int) -> pa.Int64Array:
    """The partition of each key (text or bytes; text is hashed as UTF-8)."""
    data = keys.cast(pa.binary())
    lengths = pc.binary_length(data)
    # murmur2 reads a key 4 bytes at a time: keys of one length take the same steps.
    by_length = pc.unique(lengths).to_pylist()
    if len(by_length) == 1:
        hashed = _murmur2(data, by_length[0])
    else:
        positions: list[pa.Array] = []
        hashes: list[pa.Array] = []
        for length in by_length:
            where = pc.indices_nonzero(pc.equal(lengths, length))
            positions.append(where)
            hashes.append(_murmur2(data.take(where), length))
        if not positions:
            return pa.array([], pa.int64())
        order = pc.sort_indices(pa.concat_arrays(positions))
        hashed = pa.concat_arrays(hashes).take(order)
    positive = pc.bit_wise_and(hashed.cast(pa.int64()), 0x7FFFFFFF)
    return pc.subtract(positive, pc.multiply(pc.divide(positive, partitions), partitions))


def _murmur2(keys: pa.BinaryArray, length: int) -> pa.UInt32Array:
    """Kafka's murmur2 of keys that are all ``length`` bytes long."""
    count = len(keys)
    h = pa.repeat(_u32((_SEED ^ length) & 0xFFFFFFFF), count)
    if length:
        # The keys' bytes are contiguous: as lists of ``length`` bytes, byte i of every
        # key is one list_element call.
        _, offsets, flat = keys.buffers()
        first = pa.Array.from_buffers(pa.int32(), 1, [None, offsets], offset=keys.offset)
        octets = pa.Array.from_buffers(
            pa.uint8(), count * length, [None, flat], offset=first[0].as_py()
        )
        rows = pa.FixedSizeListArray.from_arrays(octets, length)

        def byte(index: int) -> pa.UInt32Array:
            return pc.list_element(rows, index).cast(_U32)

        for word in range(length // 4):
            k = byte(4 * word)
            for shift in (1, 2, 3):
                k = pc.bit_wise_or(k, pc.shift_left(byte(4 * word + shift), _u32(8 * shift)))
            k = pc.multiply(k, _M)
            k = pc.bit_wise_xor(k, pc.shift_right(k, _u32(24)))
            k = pc.multiply(k, _M)
            h = pc.bit_wise_xor(pc.multiply(h, _M), k)
        tail = length - length % 4
        if length % 4:
            for index in reversed(range(length % 4)):
                h = pc.bit_wise_xor(h, pc.shift_left(byte(tail + index), _u32(8 * index)))
            h = pc.multiply(h, _M)
    h = pc.bit_wise_xor(h, pc.shift_right(h, _u32(13)))
    h = pc.multiply(h, _M)
    return pc.bit_wise_xor(h, pc.shift_right(h, _u32(15)))
