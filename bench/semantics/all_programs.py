"""Every program of the corpus, with the measured marks of ``marks.py`` applied."""
from __future__ import annotations

import dataclasses

from bench.semantics import (fam_classes, fam_containers, fam_context, fam_exceptions, fam_functional,  # noqa: F401
                             fam_grad_modes, fam_iterators, fam_numpy, fam_objects, marks)
from bench.semantics.corpus import PROGRAMS


def load_all() -> list:
    """The programs (registered by importing the family modules above), marks applied."""
    return [dataclasses.replace(p, tc_whole=p.tc_whole and p.id not in marks.TC_BREAKS,
                                gap=marks.GAPS.get(p.id, p.gap)) for p in PROGRAMS]
