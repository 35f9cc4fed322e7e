"""The Python-semantics corpus: hundreds of small programs, by feature family.

Each program is a plain function (its inputs built fresh by a factory, seeded) that
exercises one Python feature around tensor code: exceptions, dict views, itertools,
classes made inside the function, grad modes, numpy ... ``corpus.run_outcome`` runs it and
records everything a caller could observe: the returned value or the raised
exception (type and text), the arguments afterwards (in-place mutations), printed
text, warnings it issued and the module state it touches.

``tests/test_semantics.py`` runs every program eagerly and through
``capture.compile`` and compares the outcomes; ``python -m bench semantics`` (see
``bench/semantics/table.py``) adds torch.compile and prints pass rates per family.

Program marks (measured, kept in ``bench/semantics/marks.py``):
- ``tc_whole``: torch.compile (fullgraph=True) takes the program as one graph, so
  capture must as well (checked by ``python -m bench semantics --check-marks``);
- ``gap``: capture does not take it whole yet: under fullgraph=True it must raise
  ``capture.Unsupported`` (a clean break with a reason), never an internal error or a
  wrong answer; the mark names the missing feature and must go when it is fixed.
"""
