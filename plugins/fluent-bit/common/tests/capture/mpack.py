"""Just enough msgpack for capture.sh's helpers (stdlib only): decode one value, and encode
the few shapes the capture sends.

Decoded values: None, bool, int, float, str values as Str(bytes), bin as Bin(bytes),
ext as Ext(type, bytes), arrays as lists, maps as lists of (key, value) pairs (order and
duplicates kept).
"""
import struct


class Str(bytes):
    pass


class Bin(bytes):
    pass


class Ext(tuple):
    pass


def decode(buf, pos=0):
    """Decodes the value at buf[pos:]: (value, end)."""
    b = buf[pos]
    pos += 1

    def take(n):
        nonlocal pos
        if pos + n > len(buf):
            raise ValueError("truncated")
        out = buf[pos:pos + n]
        pos += n
        return out

    def uint(n):
        return int.from_bytes(take(n), "big")

    def sint(n):
        return int.from_bytes(take(n), "big", signed=True)

    if b <= 0x7F:
        return b, pos
    if 0x80 <= b <= 0x8F:
        return _map(buf, pos, b & 0x0F)
    if 0x90 <= b <= 0x9F:
        return _array(buf, pos, b & 0x0F)
    if 0xA0 <= b <= 0xBF:
        return Str(take(b & 0x1F)), pos
    if b >= 0xE0:
        return b - 0x100, pos
    if b == 0xC0:
        return None, pos
    if b == 0xC2:
        return False, pos
    if b == 0xC3:
        return True, pos
    if b in (0xC4, 0xC5, 0xC6):
        n = uint(1 << (b - 0xC4))
        return Bin(take(n)), pos
    if b in (0xC7, 0xC8, 0xC9):
        n = uint(1 << (b - 0xC7))
        kind = sint(1)
        return Ext((kind, take(n))), pos
    if b == 0xCA:
        return struct.unpack(">f", take(4))[0], pos
    if b == 0xCB:
        return struct.unpack(">d", take(8))[0], pos
    if 0xCC <= b <= 0xCF:
        return uint(1 << (b - 0xCC)), pos
    if 0xD0 <= b <= 0xD3:
        return sint(1 << (b - 0xD0)), pos
    if 0xD4 <= b <= 0xD8:
        kind = sint(1)
        return Ext((kind, take(1 << (b - 0xD4)))), pos
    if 0xD9 <= b <= 0xDB:
        n = uint(1 << (b - 0xD9))
        return Str(take(n)), pos
    if b in (0xDC, 0xDD):
        n = uint(2 << (b - 0xDC))
        return _array(buf, pos, n)
    if b in (0xDE, 0xDF):
        n = uint(2 << (b - 0xDE))
        return _map(buf, pos, n)
    raise ValueError("invalid marker 0x%02x" % b)


def _array(buf, pos, n):
    items = []
    for _ in range(n):
        item, pos = decode(buf, pos)
        items.append(item)
    return items, pos


def _map(buf, pos, n):
    entries = []
    for _ in range(n):
        key, pos = decode(buf, pos)
        value, pos = decode(buf, pos)
        entries.append((key, value))
    return entries, pos


def split(buf):
    """The values concatenated in buf, as (value, raw bytes) pairs."""
    pos = 0
    while pos < len(buf):
        value, end = decode(buf, pos)
        yield value, buf[pos:end]
        pos = end


def str_(text):
    data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    n = len(data)
    if n < 32:
        return bytes([0xA0 | n]) + data
    if n < 256:
        return b"\xd9" + bytes([n]) + data
    if n < 65536:
        return b"\xda" + n.to_bytes(2, "big") + data
    return b"\xdb" + n.to_bytes(4, "big") + data


def array_header(n):
    if n < 16:
        return bytes([0x90 | n])
    if n < 65536:
        return b"\xdc" + n.to_bytes(2, "big")
    return b"\xdd" + n.to_bytes(4, "big")


def event_time(seconds, nanoseconds):
    return b"\xd7\x00" + seconds.to_bytes(4, "big") + nanoseconds.to_bytes(4, "big")


def get(record, key):
    """The value of the last entry of a decoded map with this str key, or None."""
    found = None
    if isinstance(record, list):
        for k, v in record:
            if isinstance(k, Str) and k == key:
                found = v
    return found
