"""`python -m idcbench ...` and `torchrun -m idcbench run ...` enter here."""

from idcbench.cli import main

if __name__ == "__main__":
    main()
