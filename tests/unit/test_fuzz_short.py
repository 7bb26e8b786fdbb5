"""A short fuzz run in CI: every trust-boundary parser gets a few thousand mutated inputs (seeded from
tests/vectors and valid encodings) and only its documented error type may escape. The long, coverage-guided
run is ``bench/fuzz.py`` (atheris); this one is the same targets under the in-process mutator, seeded, so a
failure reproduces. A crash prints the input (base64): add it to the parser's unit tests as a regression."""

import base64

import pytest

from wcnotify.bench.fuzz import Mutator, build_targets, check, run_builtin

TARGETS = build_targets()
INPUTS = 3000


def test_every_parser_at_the_trust_boundary_is_a_target():
    assert set(TARGETS) == {
        "envelope", "jwt", "jwt_claims", "jsonrpc", "cacao", "did_document", "pairing",
        "proposal_params", "proposal_record", "push_subscription", "sync_record",
    }


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_seeds_are_valid_inputs(name):
    """The corpus starts from valid inputs, so mutations start deep in the parser, not at its first check."""
    target = TARGETS[name]
    for seed in target.seeds:
        target.run(seed)  # no error at all: not even an allowed one


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_short_fuzz_run_finds_no_crash(name):
    result = run_builtin(TARGETS[name], INPUTS, seed=8)
    assert result.inputs == INPUTS
    assert result.crashes == [], [
        (c["kind"], c["where"], c["message"], base64.b64decode(c["input"])) for c in result.crashes
    ]


def test_a_crash_is_caught_and_described():
    target = TARGETS["pairing"]
    broken = type(target)("broken", lambda data: data.decode("ascii"), target.allowed, target.seeds, json=False)
    crash = check(broken, b"\xff")
    assert crash is not None and crash.kind == "UnicodeDecodeError" and crash.data == b"\xff"


def test_mutator_is_deterministic_for_a_seed():
    seeds = TARGETS["proposal_params"].seeds
    a, b = Mutator(1, seeds), Mutator(1, seeds)
    assert [a.mutate(seeds[0], True) for _ in range(50)] == [b.mutate(seeds[0], True) for _ in range(50)]
