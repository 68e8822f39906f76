"""A stand-in for torchvision inside the Mosaic peer environment.

mosaicml-streaming imports ``torchvision`` when ``streaming`` is imported, but the only
torchvision wheels available are CUDA builds that fail to load against the CPU torch
used here. The compatibility tests and benchmarks never touch Mosaic's vision datasets,
so these few names are enough for the import to succeed.
"""
