"""idcbench: the benchmark and evaluation harness for Image Difference Captioning.

>>> import idcbench
>>> idcbench.__version__
'0.1.0'
"""

__version__ = "0.1.0"
