"""GET /jobs over 1,000 stored jobs: paging, filters, order and totalCount, over real HTTP."""
from __future__ import annotations

import requests

from pai_magic.local.seed import seed_jobs

T = 30
N = 1000


def test_list_pages_and_filters_over_a_thousand_jobs(fresh_local_backend):
    b = fresh_local_backend
    names = seed_jobs(b.data_dir, b.user, N, prefix="bulk")          # states cycle SUCCEEDED, FAILED, STOPPED
    other = seed_jobs(b.data_dir, "carol", 30, prefix="carol-job", start_ms=0)
    h = b.headers()

    def get(**params):
        resp = requests.get(f"{b.api}/jobs", params=params, headers=h, timeout=T)
        assert resp.status_code == 200, resp.text
        return resp.json()

    # without withTotalCount: a bare list, newest first, the server's default limit (5000)
    everything = get()
    assert isinstance(everything, list) and len(everything) == N + 30
    assert everything[0]["name"] == names[-1] and everything[N - 1]["name"] == names[0]

    # paging: pages are disjoint and cover the whole filtered set in order
    seen = []
    for offset in range(0, N, 128):
        page = get(username=b.user, offset=offset, limit=128, withTotalCount="true")
        assert page["totalCount"] == N
        assert len(page["data"]) == min(128, N - offset)
        seen.extend(j["name"] for j in page["data"])
    assert seen == list(reversed(names))

    # filters: state (comma list), username, vc, keyword
    failed = get(state="FAILED", username=b.user, withTotalCount="true", limit=5)
    assert failed["totalCount"] == len(names[1::3]) and all(j["state"] == "FAILED" for j in failed["data"])
    two = get(state="FAILED,STOPPED", username=b.user, withTotalCount="true", limit=1)
    assert two["totalCount"] == len(names[1::3]) + len(names[2::3])
    carol = get(username="carol", withTotalCount="true")
    assert carol["totalCount"] == 30 and {j["username"] for j in carol["data"]} == {"carol"}
    both = get(username=f"carol,{b.user}", withTotalCount="true", limit=1)
    assert both["totalCount"] == N + 30
    assert get(vc="default", withTotalCount="true", limit=1)["totalCount"] == N + 30
    assert get(vc="other", withTotalCount="true")["totalCount"] == 0
    kw = get(keyword="bulk-99", withTotalCount="true")
    assert kw["totalCount"] == 11  # bulk-99 and bulk-990..999
    assert get(keyword="carol", withTotalCount="true")["totalCount"] == 30  # user name matches too
    assert get(keyword="%", withTotalCount="true")["totalCount"] == 0       # LIKE wildcards are literal

    # order
    asc = get(username=b.user, order="jobName,ASC", limit=3)
    assert [j["name"] for j in asc] == sorted(names)[:3]
    oldest = get(order="submissionTime,ASC", limit=1)
    assert oldest[0]["name"] == other[0]

    # the summary has the fields clients read
    row = get(limit=1)[0]
    for key in ("name", "username", "state", "subState", "executionType", "retries", "submissionTime",
                "createdTime", "launchedTime", "completedTime", "appExitCode", "virtualCluster",
                "totalGpuNumber", "totalTaskNumber", "totalTaskRoleNumber"):
        assert key in row

    # the server's limit rules
    too_many = requests.get(f"{b.api}/jobs", params={"limit": 50001}, headers=h, timeout=T)
    assert too_many.status_code == 400
    assert too_many.json() == {"code": "InvalidParametersError", "message": "Limit exceeds max number 50000."}

    # a seeded job reads like any other through the detail route
    detail = requests.get(f"{b.api}/jobs/{b.user}~{names[0]}", headers=h, timeout=T).json()
    assert detail["jobStatus"]["state"] == "SUCCEEDED"
    assert detail["taskRoles"]["taskrole"]["taskStatuses"][0]["containerPorts"] == {"ssh": "20000", "http": "30000"}


def test_submitted_jobs_list_before_seeded_older_ones(fresh_local_backend):
    b = fresh_local_backend
    seed_jobs(b.data_dir, b.user, 50, prefix="old")
    job = {"protocolVersion": 2, "name": "fresh-one", "type": "job",
           "prerequisites": [{"name": "i", "type": "dockerimage", "uri": "ubuntu"}],
           "taskRoles": {"r": {"instances": 1, "dockerImage": "i",
                               "resourcePerInstance": {"cpu": 1, "memoryMB": 64, "gpu": 0}, "commands": ["true"]}}}
    assert b.submit(job).status_code == 202
    first = requests.get(f"{b.api}/jobs", params={"limit": 1}, headers=b.headers(), timeout=T).json()
    assert first[0]["name"] == "fresh-one"
