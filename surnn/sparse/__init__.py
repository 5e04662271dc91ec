"""Sparse inference for trained suRNN layers: compute only the neurons whose switch is open."""
from surnn.sparse.engine import SparseSuRNN

__all__ = ["SparseSuRNN"]
