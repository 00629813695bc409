"""Dataset loaders (import path `idcbench.datasets`). Importing this package registers every dataset in `DATASETS`:
`clevr-change`, `spot-the-diff`, `ier`, the synthetic `shapes`, and `pairs:PATH` (a user's own JSONL / CSV file).

>>> from idcbench.registry import DATASETS
>>> {"clevr-change", "ier", "shapes", "spot-the-diff"} <= set(DATASETS.names())
True
"""

from . import clevr_change, ier, pairs, shapes_dataset, spot_the_diff  # noqa: F401  (register on import)
from . import levir_cc, spot_the_diff_multi  # noqa: F401  (register on import)
