"""Selective-Update RNNs: a layer whose neurons each carry a binary update switch."""
from surnn.cell import SuRNN
from surnn.config import SuRNNConfig
from surnn.reference import scan_ref

__all__ = ["SuRNN", "SuRNNConfig", "scan_ref"]
