"""Dataset loaders (import path `idcbench.datasets`). Importing this package registers every dataset in `DATASETS`."""
