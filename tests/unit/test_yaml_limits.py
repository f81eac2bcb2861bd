"""The core's protocol parser refuses YAML that costs more than it shows (issue 12):
alias bombs and deep nesting are an InvalidInputError that says which limit was hit."""
from __future__ import annotations

import time

import pytest

from pai_magic.core.errors import InvalidInputError
from pai_magic.core.protocol.yamlio import MAX_ALIAS_VALUES, MAX_DEPTH, parse_protocol


def bomb(levels: int) -> str:
    lines = ["protocolVersion: 2", "name: bomb", "parameters:", '  a0: &a0 ["x","x","x","x","x","x","x","x","x"]']
    for i in range(1, levels + 1):
        lines.append(f"  a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_quickly_with_the_reason():
    start = time.perf_counter()
    with pytest.raises(InvalidInputError) as info:
        parse_protocol(bomb(9))
    assert time.perf_counter() - start < 1.0
    message = str(info.value)
    assert "aliases" in message and f"{MAX_ALIAS_VALUES:,}" in message and "\n" not in message


def test_a_few_aliases_and_merges_still_parse():
    assert len(parse_protocol(bomb(2))["parameters"]["a2"]) == 9
    job = parse_protocol("defaults: &d {cpu: 1, gpu: 0}\nroles:\n  a: {<<: *d, gpu: 2}\n  b: *d\n")
    assert job["roles"] == {"a": {"cpu": 1, "gpu": 2}, "b": {"cpu": 1, "gpu": 0}}


@pytest.mark.parametrize("text", ["p: " + "[" * 50_000 + "]" * 50_000,
                                  "p: " + "{a: " * 5_000 + "1" + "}" * 5_000,
                                  "p:\n" + "".join("  " * i + "- \n" for i in range(1, 500))])
def test_deep_nesting_is_refused_not_a_crash(text):
    with pytest.raises(InvalidInputError) as info:
        parse_protocol(text)
    assert f"deeper than {MAX_DEPTH}" in str(info.value)


def test_nesting_up_to_the_limit_parses():
    depth = MAX_DEPTH - 2
    value = parse_protocol("p: " + "[" * depth + "1" + "]" * depth)["p"]
    for _ in range(depth - 1):
        value = value[0]
    assert value == [1]
