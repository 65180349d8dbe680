"""The reference engine: a flat decoder built from an ArchSpec, run on our Triton kernels or torch's.

model.py (the decoder), tp.py (Megatron sharding), kvcache.py (static cache), backends.py (the
kernel switch), runner.py (prefill, CUDA-graph decode, timing), reference.py (a plain forward for
checks), hf_eager.py (transformers' generate, the outside stack). All import torch; nothing runs at
import time, and only GPU commands import this package.
"""
