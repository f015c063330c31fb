"""Deep checks of a loaded dataset that the loaders' header reads cannot make: every image
decodes to the end, its size matches what the annotations say, and no image sits in two splits.

Example:
    >>> from detseg.data.io import load_dataset          # doctest: +SKIP
    >>> from detseg.data.verify import verify_dataset
    >>> problems = verify_dataset(load_dataset("datasets/food"))
"""

from __future__ import annotations

import hashlib

from tqdm import tqdm

from detseg.data.dataset import Dataset
from detseg.images import open_pil, shown_size


def verify_dataset(dataset: Dataset, progress: bool = True) -> list[str]:
    """Every problem found, one line each naming the file (empty when the dataset is sound).

    Checks: truncated or corrupt image data (decoded in full), an image whose pixel size differs
    from the width/height its annotations use (COCO ``images`` entries), and the same image
    content in more than one split (a leak between training and validation).
    """
    problems, seen = [], {}
    records = [(split, r) for split, rs in dataset.splits.items() for r in rs]
    for split, r in tqdm(records, desc="verify", unit="img", disable=not progress):
        try:
            data = r.path.read_bytes()
            with open_pil(r.path) as im:
                size = shown_size(im)  # as read_image returns it: EXIF orientation applied (before load(), which
                im.load()  # drops a TIFF's tag); load decodes everything: a truncated file fails here
        except Exception as e:  # Pillow raises many types for broken files
            problems.append(f"{r.path}: does not decode ({type(e).__name__}: {e})")
            continue
        if size != (r.width, r.height):
            problems.append(f"{r.path}: is {size[0]}x{size[1]} but its annotations say {r.width}x{r.height}")
        digest = hashlib.blake2b(data, digest_size=16).hexdigest()
        first = seen.setdefault(digest, (split, r.path))
        if first[0] != split and first[1] != r.path:  # a split that *is* another (val: images/train) is no leak
            problems.append(f"{r.path} ({split}) is the same image as {first[1]} ({first[0]})")
    return problems
