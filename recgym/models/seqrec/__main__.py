"""``python -m recgym.models.seqrec NAME``: train (or load) a retriever (see :mod:`.hub`)."""

from recgym.models.seqrec.hub import main

main()
