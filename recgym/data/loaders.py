"""Loaders of the seeds' benchmark formats, read from local files the user downloaded.

Importing this module registers ``esci`` (Amazon Shopping Queries), ``amazon-c4``,
``amazon-reviews-2023`` and ``generic`` (any CSV/parquet interaction log plus item table);
:func:`recgym.data.registry.load_dataset` passes its keyword arguments (the paths) through.
"""

from __future__ import annotations

from recgym.data.amazon_c4 import load_amazon_c4
from recgym.data.amazon_reviews import load_amazon_reviews_2023
from recgym.data.esci import load_esci
from recgym.data.generic import load_generic, load_recbole

__all__ = [
    "load_amazon_c4",
    "load_amazon_reviews_2023",
    "load_esci",
    "load_generic",
    "load_recbole",
]
