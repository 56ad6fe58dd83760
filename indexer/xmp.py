"""XMP sidecar files: accepted tags written where other photo tools can read them.

The image file itself is never opened for writing. Keywords go to ``dc:subject`` (the flat
keyword list every XMP reader knows) and to Lightroom's ``lr:hierarchicalSubject`` under a
``kezhao|`` parent. That parent marks which keywords are ours: re-running replaces our
previous keywords and keeps everything else already in the sidecar (ratings, other tools'
keywords), so exports update rather than duplicate.

Naming: ``IMG_0001.xmp`` beside ``IMG_0001.jpg`` (the ``%d%f.xmp`` convention of exiftool
and Adobe's tools). When another file in the folder shares the name with a different
extension (``IMG_0001.heic``), the sidecar is ``IMG_0001.jpg.xmp`` instead (darktable's and
digiKam's convention) so the two photos' tags never mix.
"""

from __future__ import annotations

import os
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from io import BytesIO
from pathlib import Path

from indexer.errors import KezhaoError

RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
DC = "http://purl.org/dc/elements/1.1/"
LR = "http://ns.adobe.com/lightroom/1.0/"
X = "adobe:ns:meta/"
HIERARCHY_ROOT = "kezhao"
PACKET_BEGIN = '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
PACKET_END = '<?xpacket end="w"?>'
_STANDARD_PREFIXES = {"x": X, "rdf": RDF, "dc": DC, "lr": LR}
MAX_SIDECAR_BYTES = 8 << 20
LANGUAGES = ("both", "zh", "en")


class XmpError(KezhaoError):
    """An existing sidecar that cannot be updated safely (unreadable, not XMP)."""


def sidecar_path(photo: Path, *, full_name: bool = False) -> Path:
    """Where the sidecar of `photo` goes (see the module docstring for the naming)."""
    photo = Path(photo)
    if full_name or _stem_shared(photo):
        return photo.with_name(photo.name + ".xmp")
    return photo.with_name(photo.stem + ".xmp")


def _stem_shared(photo: Path) -> bool:
    try:
        siblings = list(photo.parent.iterdir())
    except OSError:
        return False
    return any(
        s.stem == photo.stem and s.name != photo.name and s.suffix.lower() != ".xmp"
        for s in siblings
    )


def labels_for(tags: Sequence[tuple[str, str, str]], language: str = "both") -> list[str]:
    """Keywords for accepted tags given as (key, zh, en): Chinese, English or both labels."""
    if language not in LANGUAGES:
        raise XmpError(f"unknown keyword language {language!r} (use one of {', '.join(LANGUAGES)})")
    labels: list[str] = []
    for _key, zh, en in tags:
        if language in ("both", "zh"):
            labels.append(zh)
        if language in ("both", "en"):
            labels.append(en)
    return list(dict.fromkeys(labels))


def read_keywords(text: str) -> tuple[list[str], list[str]]:
    """(dc:subject, lr:hierarchicalSubject) of an XMP document, in document order."""
    root = _parse(text)
    return _bag_items(root, f"{{{DC}}}subject"), _bag_items(root, f"{{{LR}}}hierarchicalSubject")


def updated_sidecar(existing: str | None, labels: Sequence[str]) -> str | None:
    """The sidecar text carrying exactly `labels` as kezhao's keywords, or None when the
    existing text already does (nothing to write)."""
    root = _parse(existing) if existing is not None else _new_document()
    subjects = _bag_items(root, f"{{{DC}}}subject")
    hierarchy = _bag_items(root, f"{{{LR}}}hierarchicalSubject")
    prefix = HIERARCHY_ROOT + "|"
    ours = {h.split("|")[-1] for h in hierarchy if h.startswith(prefix)} - set(labels)
    wanted = [prefix + label for label in labels]
    # Keep every keyword where it is, drop ours that are no longer accepted, append new ones.
    new_subjects = [s for s in subjects if s not in ours]
    new_subjects += [label for label in labels if label not in new_subjects]
    new_hierarchy = [h for h in hierarchy if not h.startswith(prefix) or h in wanted]
    new_hierarchy += [h for h in wanted if h not in new_hierarchy]
    if existing is not None and (new_subjects, new_hierarchy) == (subjects, hierarchy):
        return None
    description = _target_description(root)
    _set_bag(root, description, f"{{{DC}}}subject", new_subjects)
    _set_bag(root, description, f"{{{LR}}}hierarchicalSubject", new_hierarchy)
    ET.indent(root, space=" ")
    body = ET.tostring(root, encoding="unicode")
    return f"{PACKET_BEGIN}\n{body}\n{PACKET_END}\n"


def write_sidecar(path: Path, labels: Sequence[str]) -> str:
    """Create or update one sidecar; returns 'created', 'updated' or 'unchanged'.

    Written to a temporary file and renamed, so a crash never leaves half a sidecar.
    """
    path = Path(path)
    existing: str | None = None
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise XmpError(f"{path} exists and is not a regular file; left untouched")
    if path.exists():
        if path.stat().st_size > MAX_SIDECAR_BYTES:
            raise XmpError(f"{path} is too large to be an XMP sidecar; left untouched")
        try:
            existing = path.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise XmpError(f"cannot read existing sidecar {path}: {err}") from err
    elif not labels:
        return "unchanged"
    text = updated_sidecar(existing, labels)
    if text is None:
        return "unchanged"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".kezhao-", suffix=".xmp.tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return "updated" if existing is not None else "created"


# ------------------------------------------------------------------ helpers
def _parse(text: str) -> ET.Element:
    data = text.encode("utf-8")
    try:
        for _event, (prefix, uri) in ET.iterparse(BytesIO(data), events=("start-ns",)):
            if prefix and not prefix.startswith("ns") and prefix != "xml":
                ET.register_namespace(prefix, uri)
        root = ET.fromstring(data)
    except ET.ParseError as err:
        raise XmpError(f"existing sidecar is not valid XML ({err}); left untouched") from err
    for prefix, uri in _STANDARD_PREFIXES.items():
        ET.register_namespace(prefix, uri)
    if root.tag != f"{{{RDF}}}RDF" and root.find(f".//{{{RDF}}}RDF") is None:
        raise XmpError("existing sidecar has no rdf:RDF element; left untouched")
    return root


def _new_document() -> ET.Element:
    for prefix, uri in _STANDARD_PREFIXES.items():
        ET.register_namespace(prefix, uri)
    root = ET.Element(f"{{{X}}}xmpmeta", {f"{{{X}}}xmptk": "kezhao"})
    rdf = ET.SubElement(root, f"{{{RDF}}}RDF")
    ET.SubElement(rdf, f"{{{RDF}}}Description", {f"{{{RDF}}}about": ""})
    return root


def _rdf(root: ET.Element) -> ET.Element:
    if root.tag == f"{{{RDF}}}RDF":
        return root
    found = root.find(f".//{{{RDF}}}RDF")
    assert found is not None  # checked by _parse
    return found


def _bag_items(root: ET.Element, tag: str) -> list[str]:
    items: list[str] = []
    for prop in _rdf(root).iter(tag):
        for li in prop.iter(f"{{{RDF}}}li"):
            if li.text and li.text.strip() and li.text.strip() not in items:
                items.append(li.text.strip())
    return items


def _target_description(root: ET.Element) -> ET.Element:
    rdf = _rdf(root)
    descriptions = rdf.findall(f"{{{RDF}}}Description")
    for d in descriptions:
        if d.find(f"{{{DC}}}subject") is not None:
            return d
    if descriptions:
        return descriptions[0]
    return ET.SubElement(rdf, f"{{{RDF}}}Description", {f"{{{RDF}}}about": ""})


def _set_bag(root: ET.Element, description: ET.Element, tag: str, items: list[str]) -> None:
    rdf = _rdf(root)
    for d in rdf.findall(f"{{{RDF}}}Description"):
        olds = d.findall(tag)
        for old in olds:
            d.remove(old)
        # A description we emptied (and that says nothing else) would only be clutter.
        if olds and d is not description and len(d) == 0 and set(d.attrib) <= {
            f"{{{RDF}}}about"
        }:
            rdf.remove(d)
    if not items:
        return
    bag = ET.SubElement(ET.SubElement(description, tag), f"{{{RDF}}}Bag")
    for item in items:
        ET.SubElement(bag, f"{{{RDF}}}li").text = item
