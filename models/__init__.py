"""Model adapters (import path `idcbench.models`). Importing this package registers every model in `MODELS`
(names, configs and descriptions only: a model's code, torch and open_clip are imported when it is built).
`idcbench.models.tinyclip` registers the miniature CLIP with open_clip; the code that builds backbones imports it."""

from idcbench.models import baselines, clip4idc, vlm  # noqa: F401  (registration side effects)
