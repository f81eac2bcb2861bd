"""``%pai_vcs`` against the embedded backend over real HTTP: the virtual clusters as a table,
and a stray argument is one UsageError line."""
from __future__ import annotations

import pytest
from IPython.core.error import UsageError


def test_pai_vcs_lists_the_virtual_clusters(pai):
    table = pai.line("pai_vcs")
    assert table.columns[:2] == ["virtual cluster", "GPUs free"]
    assert [row[0] for row in table.rows] == ["default"] and table.rows[0][-1] == "yes", table.rows
    assert "<table" in table._repr_html_() and "default" in table.text()
    with pytest.raises(UsageError) as info:
        pai.line("pai_vcs", "--gpu 1")
    assert "takes no arguments" in str(info.value) and "\n" not in str(info.value)
