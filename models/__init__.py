"""Model adapters (import path `idcbench.models`). Importing this package registers every model in `MODELS`."""

from idcbench.models import baselines, clip4idc, tinyclip  # noqa: F401  (registration side effects)
