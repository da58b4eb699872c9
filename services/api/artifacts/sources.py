"""What a `source_url` or an instance disk `base` names (reference §2.6,
§2.8). Pure.

- blank: unset, "" or "none";
- an image to fetch: an http(s) URL with a host, or an image shorthand such
  as `debian:11` (`SHORTHAND`; the node agent's table resolves it);
- `label:<name>`: a label of the caller's namespace;
- `sf://label/<ns>/<label>`, `sf://upload/<ns>/<name>`: the artifact of
  that source URL;
- `sf://snapshot/<artifact uuid>`: that artifact, of any type;
- `sf://blob/<uuid>`: that blob.

Any other scheme (`file:`, `ftp:`, `sf://instance/...`) is a 400 here,
before anything is written or fetched (§11 Q7).
"""

from __future__ import annotations

import re
import urllib.parse
import uuid as uuid_module
from dataclasses import dataclass
from enum import Enum

from services.api import sizes
from services.common import errors

SHORTHAND = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(:[0-9][A-Za-z0-9._-]*)?")
"""An image shorthand: `cirros`, `debian:11`, `ubuntu:22.04`, `centos:9-stream`.
A tag starts with a digit, as every release tag does, so `name:rest` of
another scheme (`data:text`, `file:etc`, `javascript:x`) is not one."""
IMAGE_SCHEMES = frozenset({"http", "https"})
LABEL_PREFIX = "label:"
SF_PREFIX = "sf://"
SEGMENT = re.compile(r"[^/\s]+")
"""A namespace, label or upload name inside an sf:// URL: one path segment."""


class Kind(Enum):
    """What a base names."""

    BLANK = "blank"
    IMAGE = "image"
    LABEL = "label"
    SF_LABEL = "sf-label"
    SF_UPLOAD = "sf-upload"
    SF_SNAPSHOT = "sf-snapshot"
    SF_BLOB = "sf-blob"


@dataclass(frozen=True)
class Source:
    """A parsed base."""

    kind: Kind
    text: str
    """The base as given."""
    name: str = ""
    """The label of `label:`; the namespace-qualified parts of sf:// URLs are in `text`."""
    uuid: str = ""
    """The artifact of sf://snapshot/, the blob of sf://blob/."""


def label_url(namespace: str, label: str) -> str:
    """The source URL of a label."""
    return f"{SF_PREFIX}label/{namespace}/{label}"


def is_image_url(text: str) -> bool:
    """An http(s) URL with a host, or an image shorthand."""
    if SHORTHAND.fullmatch(text):
        return True
    try:
        parts = urllib.parse.urlsplit(text)
        return parts.scheme.lower() in IMAGE_SCHEMES and bool(parts.hostname)
    except ValueError:  # a malformed netloc, such as an unclosed "["
        return False


def check_image_url(field: str, text: str) -> None:
    """What `POST /artifacts` and an instance's image base may fetch."""
    sizes.check_length(field, text, sizes.URL_CHARS)
    if not is_image_url(text):
        raise errors.InvalidArgument(
            f'{field} "{text}" is neither an http or https URL nor an image '
            "shorthand such as debian:11"
        )


def parse_base(field: str, base: str) -> Source:
    """What the disk base `base` names; 400 naming `field` when nothing."""
    if not base or base.lower() == "none":
        return Source(Kind.BLANK, base)
    if base.startswith(LABEL_PREFIX):
        name = base[len(LABEL_PREFIX) :]
        if not SEGMENT.fullmatch(name):
            raise errors.InvalidArgument(f'{field} "{base}": a label name is one path segment')
        return Source(Kind.LABEL, base, name=name)
    if base.startswith(SF_PREFIX):
        return _parse_sf(field, base)
    check_image_url(field, base)
    return Source(Kind.IMAGE, base)


def _parse_sf(field: str, base: str) -> Source:
    scheme, _, rest = base[len(SF_PREFIX) :].partition("/")
    parts = rest.split("/")
    if scheme in ("label", "upload") and len(parts) == 2 and all(map(SEGMENT.fullmatch, parts)):
        return Source(Kind.SF_LABEL if scheme == "label" else Kind.SF_UPLOAD, base)
    if scheme in ("snapshot", "blob") and len(parts) == 1:
        canonical = _uuid(parts[0])
        if canonical:
            kind = Kind.SF_SNAPSHOT if scheme == "snapshot" else Kind.SF_BLOB
            return Source(kind, base, uuid=canonical)
    raise errors.InvalidArgument(
        f'{field} "{base}": sf:// bases are sf://label/<namespace>/<label>, '
        "sf://upload/<namespace>/<name>, sf://snapshot/<artifact uuid> or sf://blob/<blob uuid>"
    )


def parse_nvram_template(field: str, text: str) -> Source:
    """What an instance's `nvram_template` names (reference §2.8, §4.7):
    `label:<name>` (the label's newest blob), `sf://blob/<uuid>`, or a bare
    blob uuid (as the CLI's help has it); anything else is a 400 naming
    `field`."""
    canonical = _uuid(text)
    if canonical:
        return Source(Kind.SF_BLOB, text, uuid=canonical)
    if text.startswith(LABEL_PREFIX) or text.startswith(f"{SF_PREFIX}blob/"):
        source = parse_base(field, text)
        if source.kind in (Kind.LABEL, Kind.SF_BLOB):
            return source
    raise errors.InvalidArgument(
        f'{field} "{text}": an NVRAM template is label:<name>, sf://blob/<uuid> or a blob uuid'
    )


def _uuid(text: str) -> str:
    try:
        return str(uuid_module.UUID(text))
    except ValueError:
        return ""


def name_of(source_url: str) -> str:
    """The name an image artifact of `source_url` is looked up by (§2.4):
    a URL's last path segment, query included; a shorthand itself."""
    if SHORTHAND.fullmatch(source_url):
        return source_url
    return source_url.rstrip("/").rsplit("/", 1)[-1] or source_url
