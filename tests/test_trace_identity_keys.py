"""Objects hashed by identity while tracing (capture/variables/keys.py): user objects and
modules as dict keys and set members, ``id()`` of objects made in the frame. An answer
that depends on which objects the caller passed is guarded by their identity: another
object on a later call must not reuse the first call's answer."""
import collections

import torch

import capture


class Plain:
    pass


def test_membership_of_argument_objects_follows_their_identity():
    def fn(x, a, b):
        s = {a}
        d = {a: 1, b: 2}
        return x + (b in s) + len(d)

    compiled = capture.compile(fn, backend="eager")
    a, b, c = Plain(), Plain(), Plain()
    for args in [(a, a), (a, b), (c, c), (b, c), (a, a)]:
        x = torch.zeros(2)
        torch.testing.assert_close(compiled(x, *args), fn(x, *args))


def test_modules_deduplicated_in_a_set_follow_the_list_passed():
    def fn(x, mods):
        seen = set()
        for m in mods:
            seen.add(m)
        return x * len(seen)

    compiled = capture.compile(fn, backend="eager")
    m1, m2 = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    for mods in [[m1, m1], [m1, m2], [m2, m2]]:
        x = torch.ones(2)
        torch.testing.assert_close(compiled(x, mods), fn(x, mods))


def test_object_made_in_the_frame_returned_twice_stays_one_object():
    def fn(x):
        err = ValueError("bad")
        q = collections.deque([x], maxlen=2)
        return err, err, q, q

    out = capture.compile(fn, backend="eager", fullgraph=True)(torch.ones(2))
    assert out[0] is out[1] and out[2] is out[3] and out[2].maxlen == 2
