"""Rights signals embedded in an audio file's XMP: the IPTC/PLUS Data Mining value
(``plus:DataMining``) and a TDMRep reservation (``tdm:reservation`` / ``tdm:policy``). Plain
module.

Where XMP lives: MP3 carries it in an ID3v2 ``PRIV`` frame owned by ``XMP``; Ogg and FLAC in a
Vorbis comment (key ``XMP``, or any comment holding an ``<x:xmpmeta>`` packet), both read with
mutagen so a packet spanning Ogg pages is read whole; any other container (WAV ``_PMX``, AIFF,
...) is searched byte-wise for an ``<x:xmpmeta>...</x:xmpmeta>`` packet. The packet is parsed
with the standard library's XML parser after refusing DTDs and entity declarations (no entity
expansion can happen) and packets over `MAX_PACKET_BYTES`.

A packet that cannot be parsed (not well-formed, unterminated, a DTD, a ``tdm:reservation``
other than 0 or 1) raises `XmpError`; the importer then imports nothing for that file.
"""

from __future__ import annotations

import mmap
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import mutagen
from mutagen.id3 import ID3

PLUS_NS = "http://ns.useplus.org/ldf/xmp/1.0/"
TDMREP_NS = "http://www.w3.org/ns/tdmrep#"
RDF_NS = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
XMP_START = b"<x:xmpmeta"
XMP_END = b"</x:xmpmeta>"
MAX_PACKET_BYTES = 1 << 20  # XMP in audio is a few kB; refuse what cannot be metadata


class XmpError(ValueError):
    """An embedded XMP packet cannot be read (the message says where and why)."""


@dataclass(frozen=True)
class EmbeddedRights:
    """What a file's XMP says about mining and training (empty when it says nothing)."""

    data_mining: tuple[str, ...] = ()  # plus:DataMining values as written
    tdm_reservation: int | None = None  # tdm:reservation (0 or 1)
    tdm_policy: str = ""  # tdm:policy URL

    @property
    def empty(self) -> bool:
        return not self.data_mining and self.tdm_reservation is None and not self.tdm_policy


def read_embedded_rights(path: Path) -> EmbeddedRights:
    """The rights signals of every XMP packet in the file, merged (a reservation in any packet
    stands). Raises XmpError for a packet that cannot be parsed, OSError when unreadable."""
    values: list[str] = []
    reservation: int | None = None
    policy = ""
    for number, packet in enumerate(xmp_packets(path), start=1):
        try:
            rights = parse_xmp(packet)
        except XmpError as exc:
            raise XmpError(f"XMP packet {number}: {exc}") from None
        values += [v for v in rights.data_mining if v not in values]
        if rights.tdm_reservation is not None:
            reservation = max(reservation or 0, rights.tdm_reservation)
        policy = policy or rights.tdm_policy
    return EmbeddedRights(tuple(values), reservation, policy)


def xmp_packets(path: Path) -> list[bytes]:
    """The raw XMP packets of the file: from its tags when mutagen knows the container's XMP
    place, else found in its bytes."""
    packets = _packets_in_tags(Path(path))
    return packets if packets else _packets_in_bytes(Path(path))


def _packets_in_tags(path: Path) -> list[bytes]:
    try:
        parsed = mutagen.File(str(path))
    except Exception:  # mutagen raises many format-specific errors; the byte scan still runs
        return []
    tags = getattr(parsed, "tags", None)
    if tags is None:
        return []
    if isinstance(tags, ID3):
        return [frame.data for frame in tags.getall("PRIV") if frame.owner == "XMP"]
    packets = []
    try:
        items = list(tags.items()) if hasattr(tags, "items") else []
    except Exception:
        return []
    for key, value in items:
        for text in value if isinstance(value, list) else [value]:
            if isinstance(text, str) and (key.lower() == "xmp" or "<x:xmpmeta" in text):
                packets.append(text.encode("utf-8"))
    return packets


def _packets_in_bytes(path: Path) -> list[bytes]:
    with path.open("rb") as handle:
        if path.stat().st_size == 0:
            return []
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            packets = []
            start = data.find(XMP_START)
            while start != -1:
                end = data.find(XMP_END, start)
                if end == -1:
                    raise XmpError(f"an XMP packet starts at byte {start} but never ends")
                end += len(XMP_END)
                if end - start > MAX_PACKET_BYTES:
                    raise XmpError(
                        f"the XMP packet at byte {start} is {end - start} bytes "
                        f"(at most {MAX_PACKET_BYTES})"
                    )
                packets.append(data[start:end])
                start = data.find(XMP_START, end)
            return packets


def parse_xmp(packet: bytes) -> EmbeddedRights:
    """The rights signals of one XMP packet. Raises XmpError when it cannot be parsed."""
    if len(packet) > MAX_PACKET_BYTES:
        raise XmpError(f"{len(packet)} bytes (at most {MAX_PACKET_BYTES})")
    if b"<!DOCTYPE" in packet or b"<!ENTITY" in packet:
        raise XmpError("a DTD or entity declaration is not allowed in XMP")
    start, end = packet.find(XMP_START), packet.rfind(XMP_END)
    if start != -1 and end > start:  # drop the xpacket wrapper and any padding around it
        packet = packet[start : end + len(XMP_END)]
    packet = packet.strip(b"\0 \t\r\n")
    try:
        root = ET.fromstring(packet)
    except ET.ParseError as exc:
        raise XmpError(f"not well-formed XML ({exc})") from None
    values: list[str] = []
    for text in _property(root, PLUS_NS, "DataMining"):
        if text not in values:
            values.append(text)
    reservations = _property(root, TDMREP_NS, "reservation")
    reservation = None
    for text in reservations:
        if text not in ("0", "1"):
            raise XmpError(f"tdm:reservation must be 0 or 1, got {text!r}")
        reservation = max(reservation or 0, int(text))
    policies = _property(root, TDMREP_NS, "policy")
    return EmbeddedRights(tuple(values), reservation, policies[0] if policies else "")


def _property(root: ET.Element, namespace: str, name: str) -> list[str]:
    """Values of an RDF property written as an attribute of an rdf:Description, as an element
    with text or ``rdf:resource``, or as an element holding an rdf:Alt/Bag/Seq of ``rdf:li``."""
    qualified = f"{{{namespace}}}{name}"
    found: list[str] = []
    for element in root.iter():
        value = element.get(qualified)
        if value is not None and value.strip():
            found.append(value.strip())
    for element in root.iter(qualified):
        resource = element.get(f"{{{RDF_NS}}}resource")
        items = [li.text or "" for li in element.iter(f"{{{RDF_NS}}}li")]
        for text in [resource, element.text, *items]:
            if text is not None and text.strip():
                found.append(text.strip())
    return found
