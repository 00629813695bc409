"""Example ids as other code spells them: match a predictions file's ids to the references' ids.

Prediction and ground-truth files written by other IDC code name the same pair differently: the official CLIP4IDC
code and later papers write Spot-the-Diff's pair ``256`` as ``"256.png"``, RCC-style CLEVR-Change code may write
``"CLEVR_default_000123.png"`` for ``"000123.png"``. A dataset's `id_key` maps every spelling of an id to one key
(`file_id_key` by default: the id without an image-file extension); `align_ids` renames predictions to the
references' spelling when exactly one reference id has their key, and leaves the others for the scorer to reject.

>>> align_ids({"256.png": "a car left", "67": "nothing"}, ["256", "67"])
{'256': 'a car left', '67': 'nothing'}
>>> file_id_key("000123.png_n"), file_id_key("Reddit_1052"), file_id_key("5406.PNG")
('000123_n', 'Reddit_1052', '5406')
"""

from __future__ import annotations

import re
from typing import Callable, Iterable, Mapping

from idcbench.errors import UserError

_IMAGE_EXT = re.compile(r"\.(?:png|jpe?g|gif|bmp)(?=(?:_n)?$)", re.IGNORECASE)

IdKey = Callable[[str], str]


def file_id_key(example_id: str) -> str:
    """The id without an image-file extension (``.png``, ``.jpg``, ...; before a CLEVR-Change ``_n`` too)."""
    return _IMAGE_EXT.sub("", example_id)


def align_ids(predictions: Mapping[str, str], reference_ids: Iterable[str], key: IdKey = file_id_key) -> dict[str, str]:
    """`predictions` with each id written as the references write it.

    An id that is a reference id stays; another one is renamed to the reference id with the same `key`, when
    exactly one has it. Two predictions that become one id are a `UserError`; ids that match nothing stay as
    they are (the scorer names them).
    """
    refs = list(reference_ids)
    known = set(refs)
    if all(i in known for i in predictions):
        return dict(predictions)
    by_key: dict[str, str | None] = {}
    for r in refs:
        k = key(r)
        by_key[k] = r if k not in by_key else None  # None: several reference ids share the key
    out: dict[str, str] = {}
    given: dict[str, str] = {}
    for i, caption in predictions.items():
        target = i if i in known else (by_key.get(key(i)) or i)
        if target in out:
            raise UserError(f"predicted ids {given[target]!r} and {i!r} are both id {target!r} of the references; "
                            "keep one caption per pair")
        out[target] = caption
        given[target] = i
    return out
