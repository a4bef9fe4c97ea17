"""kernels/numba"""
