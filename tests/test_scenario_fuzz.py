"""Property-based tests of the scenario loader (Hypothesis): any text loads or fails located.

Mutants of the library's files (deletions, insertions of YAML's special characters, words of
the format, values at its limits, duplicated, swapped or re-indented lines) and random YAML
documents never crash the loader: every error is a located :class:`Problem`, and no load
hangs.  Sized to take a few seconds here; ``tests/fuzz_scenarios.py --mutants 10000`` is the
longer run of the same property.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz_scenarios import ALPHABET, VOCABULARY, apply, check, library_texts

TEXTS = library_texts()
SETTINGS = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])

positions = st.integers(min_value=0, max_value=1 << 20)
ops = st.one_of(
    st.tuples(st.just("delete"), positions, st.integers(1, 40)),
    st.tuples(st.just("insert"), positions, st.text(alphabet=ALPHABET, min_size=1, max_size=12)),
    st.tuples(st.just("word"), positions, st.sampled_from(VOCABULARY)),
    st.tuples(st.sampled_from(["dup_line", "del_line", "truncate"]), positions),
    st.tuples(st.just("indent"), positions, st.integers(-8, 8)),
    st.tuples(st.just("swap_lines"), positions, positions),
    st.tuples(st.just("repeat"), positions, st.integers(1, 30), st.integers(2, 50)),
)


@SETTINGS
@given(st.sampled_from(range(len(TEXTS))), st.lists(ops, min_size=1, max_size=4))
def test_a_mutant_of_a_library_file_loads_or_fails_located(index: int, mutations: list) -> None:
    path, text = TEXTS[index]
    for op in mutations:
        text = apply(text, op)
    assert check(text, path.parent) is None


scalars = st.one_of(st.none(), st.booleans(), st.integers(-(1 << 70), 1 << 70),
                    st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from(VOCABULARY), st.text(max_size=20))
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=5),
                            st.dictionaries(st.sampled_from(VOCABULARY), inner, max_size=5)),
    max_leaves=25)


def _dump(doc: object) -> str:
    import io

    from ruamel.yaml import YAML
    out = io.StringIO()
    YAML(typ="safe", pure=True).dump(doc, out)
    return out.getvalue()


@SETTINGS
@given(st.dictionaries(st.sampled_from(VOCABULARY), documents, max_size=8))
def test_a_random_yaml_document_loads_or_fails_located(doc: dict) -> None:
    assert check(_dump(doc), Path("/nonexistent")) is None


@SETTINGS
@given(st.text(alphabet=ALPHABET, max_size=300))
def test_random_text_loads_or_fails_located(text: str) -> None:
    assert check(text, Path("/nonexistent")) is None
