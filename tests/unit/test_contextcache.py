"""ops/contextcache.py: the API build's contexts kept by their tar's digest.

What a build relies on: a kept context is found by its digest and only then; at most KEEP
stay, the least recently used going first, but never one a build holds; a second build that
kept the same digest first leaves the first one's; prune removes all that no build holds and
says how many bytes each freed; usage lists them, telling the ones in use.
"""

import os

from rootless_box.ops import contextcache
from rootless_box.store import Store


def _store(tmp_path):
    return Store(str(tmp_path / "store")).ensure()


def _unpacked(store, text):
    path = store.mkdtemp("build-context")
    with open(os.path.join(path, "f"), "w") as f:
        f.write(text)
    return path


def _names(store):
    return sorted(os.listdir(os.path.join(store.root, contextcache.DIRNAME)))


def test_kept_found_by_digest_and_bounded(tmp_path):
    store = _store(tmp_path)
    assert contextcache.find(store, "a" * 64) is None
    held = contextcache.keep(store, _unpacked(store, "one"), "a" * 64)
    with open(os.path.join(held.path, "f")) as f:
        assert f.read() == "one"
    held.release()
    found = contextcache.find(store, "a" * 64)
    assert found.path == held.path
    found.release()
    # the same digest kept again by a racing build: refused, the first one stays whole
    other = _unpacked(store, "one")
    assert contextcache.keep(store, other, "a" * 64) is None and os.path.isdir(other)
    # a held context outlives the bound; the least recently used unheld ones go
    busy = contextcache.find(store, "a" * 64)
    os.utime(busy.path, (1, 1))  # the oldest of all
    for i in range(contextcache.KEEP + 2):
        contextcache.keep(store, _unpacked(store, str(i)), "%064d" % i).release()
    names = _names(store)
    assert "a" * 64 in names and len(names) == contextcache.KEEP + 1
    assert "%064d" % (contextcache.KEEP + 1) in names and "%064d" % 0 not in names
    # usage: each one, the held one in use
    listed = {u["name"]: u for u in contextcache.usage(store)}
    assert sorted(listed) == names
    assert [n for n, u in listed.items() if u["in_use"]] == ["a" * 64]
    assert listed["a" * 64]["last_used"] == 1 and listed["a" * 64]["created"] > 1
    # prune: every context but the held one, with the bytes it freed; then that one too
    # once released
    pruned = dict(contextcache.prune(store))
    assert "a" * 64 not in pruned and len(pruned) == contextcache.KEEP
    assert pruned["%064d" % (contextcache.KEEP + 1)] == len(str(contextcache.KEEP + 1))
    assert _names(store) == ["a" * 64]
    busy.release()
    assert contextcache.prune(store) == [("a" * 64, 3)] and _names(store) == []
    assert contextcache.usage(store) == []
    assert not [n for n in os.listdir(store.tmp) if "old-context" in n]
