"""Listing against a real docker-registry 2.8.2: a 1,500-repository catalog, paging, empty repos."""
from __future__ import annotations

import pytest

from pai_magic.core.errors import InvalidInputError
from pai_magic.core.registry import RegistryClient
from tests.fixtures.registry import seed_repositories

N_REPOS = 1500
NAMES = sorted(f"team{i % 7}/project-{i:04d}" for i in range(N_REPOS))
MULTI = "zz/many-tags"
MANY_TAGS = tuple(f"t{i:02d}" for i in range(40))


@pytest.fixture(scope="module")
def populated(registry_session):
    seed_repositories(registry_session.url, NAMES, ("v1",))
    seed_repositories(registry_session.url, [MULTI, "zz/emptied"], MANY_TAGS)
    with RegistryClient(registry_session.url) as client:  # empty it: tags become null
        for tag in MANY_TAGS:
            client.delete_manifest("zz/emptied", client.manifest_digest("zz/emptied", tag))
        assert client.tags("zz/emptied") == []
    return registry_session


EXPECTED = sorted(NAMES + [MULTI, "zz/emptied", "seed/base"])


@pytest.mark.parametrize("page_size,pages", [(1000, 2), (100, 16), (333, 5)])
def test_catalog_lists_every_repository_following_links(populated, page_size, pages):
    with RegistryClient(populated.url) as client:
        names = list(client.catalog(page_size))
        assert names == EXPECTED  # complete, in order, no duplicates
        assert client.transport.request_count == pages  # one GET per Link followed


def test_list_images_with_tags_concurrently(populated):
    with RegistryClient(populated.url, workers=8) as client:
        listing = client.list_images()
    by_name = {item.repository: item.tags for item in listing}
    assert [item.repository for item in listing] == EXPECTED
    assert all(by_name[n] == ["v1"] for n in NAMES)
    assert by_name[MULTI] == sorted(MANY_TAGS)  # 2.8.2 returns tags unsorted; we sort
    assert by_name["zz/emptied"] == []  # "tags": null after every tag was deleted
    assert by_name["seed/base"] == []  # blobs only: tags/list answers 404 NAME_UNKNOWN


def test_filter_and_sequential_equals_concurrent(populated):
    with RegistryClient(populated.url, workers=1) as seq, RegistryClient(populated.url, workers=6) as par:
        assert seq.list_images("team3/*") == par.list_images("team3/*")
        subset = par.list_images("project-00")
    assert {i.repository for i in subset} == {n for n in NAMES if "project-00" in n}


def test_tags_with_page_size_is_generic(populated):
    # 2.8.2 ignores n on tags/list (no Link): the same paging code still returns every tag
    with RegistryClient(populated.url) as client:
        assert client.tags(MULTI, page_size=5) == sorted(MANY_TAGS)
        assert client.tags("does/not-exist") == []


def test_page_size_bounds(populated):
    with RegistryClient(populated.url) as client:
        with pytest.raises(InvalidInputError):
            list(client.catalog(1001))
        # and what the real registry says when asked anyway: one line, typed
        with pytest.raises(InvalidInputError) as err:
            client.transport.fast_get("/v2/_catalog?n=5000", scopes=[], what="the catalog")
        assert "\n" not in str(err.value)
