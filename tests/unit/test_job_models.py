"""The core's models parse what a v1.8 rest-server sends, nulls and string ports included.

Shapes follow microsoft/pai v1.8.0 src/rest-server/src/models/v2/job/k8s.js
(convertFrameworkSummary, convertFrameworkDetail, convertTaskDetail) and
src/rest-server/src/models/v2/utils/frameworkConverter.js (convertToTaskDetail: the current
task attempt first, then the history).
"""
from __future__ import annotations

from pai_magic.core.models import JobDetail, JobSummary, TaskStatus


def test_list_item_of_a_waiting_job_with_nulls():
    row = {"debugId": "f0", "name": "train", "username": "alice", "state": "WAITING",
           "subState": "AttemptCreationPending", "executionType": "START", "tags": [], "retries": 0,
           "retryDetails": {"user": 0, "platform": 0, "resource": 0}, "retryDelayTime": None,
           "submissionTime": 1700000000123, "createdTime": None, "launchedTime": None,
           "completedTime": None, "appExitCode": None, "virtualCluster": "default",
           "totalGpuNumber": 4, "totalTaskNumber": 2, "totalTaskRoleNumber": 1, "jobPriority": None}
    s = JobSummary.from_api(row)
    assert (s.full_name, s.state, s.gpus, s.retries) == ("alice~train", "WAITING", 4, 0)
    assert s.submission_time == 1700000000123 and s.completed_time is None and s.exit_code is None
    assert not s.terminal


def test_detail_of_a_waiting_job_and_a_retried_failed_one():
    waiting = {"name": "train", "tags": [], "jobPriority": None,
               "jobStatus": {"username": "alice", "state": "WAITING", "retries": 0, "attemptId": 0,
                             "submissionTime": 1700000000123, "createdTime": None, "completedTime": None,
                             "appExitCode": None, "appExitDiagnostics": None, "virtualCluster": "default"},
               "taskRoles": {"worker": {"taskRoleStatus": {"name": "worker"}, "taskStatuses": [
                   {"taskIndex": 0, "taskState": "WAITING", "containerPorts": {}, "containerExitCode": None,
                    "containerExitDiagnostics": None, "retries": 0, "attemptId": 0}]}}}
    d = JobDetail.from_api(waiting)
    task = d.task()
    assert (task.role, task.container_ip, task.ports, task.exit_code) == ("worker", None, {}, None)
    failed = {"name": "train", "jobStatus": {"username": "alice", "state": "FAILED", "retries": 2,
                                             "attemptId": 2, "submissionTime": 1700000000123,
                                             "completedTime": 1700000100000, "appExitCode": 1,
                                             "appExitDiagnostics": "exit 1", "virtualCluster": "default"},
              "taskRoles": {"worker": {"taskStatuses": [
                  {"taskIndex": 1, "taskState": "FAILED", "containerIp": "10.0.0.7",
                   "containerPorts": {"ssh": "37508", "http": "15001,15002"}, "containerExitCode": 1,
                   "retries": 2, "attemptId": 2}]}}}
    d = JobDetail.from_api(failed)
    assert (d.state, d.exit_code, d.retries, d.attempt_id, d.terminal) == ("FAILED", 1, 2, 2, True)
    t = d.task("worker", 1)
    assert t.ports == {"ssh": [37508], "http": [15001, 15002]} and t.container_ip == "10.0.0.7"


def test_task_endpoint_lists_the_current_attempt_first():
    answer = {"taskIndex": 0, "taskState": "RUNNING", "retries": 2,
              "attempts": [{"attemptId": 2, "containerIp": "10.0.0.7"}, {"attemptId": 1}, {"attemptId": 0}]}
    assert TaskStatus.from_api("worker", answer).attempt_id == 2


def test_summary_line_keeps_diagnostics_sentences_apart():
    from pai_magic.core.models import summary_line

    text = "SucceededTaskCount 1 has reached MinSucceededTaskCount 1\ndockerImage x was recorded, not run.\n"
    assert summary_line(text) == ("SucceededTaskCount 1 has reached MinSucceededTaskCount 1; "
                                  "dockerImage x was recorded, not run.")
    assert summary_line("a " * 400, 50).endswith("…") and len(summary_line("a " * 400, 50)) == 50
    assert summary_line(None) == ""


def test_controller_diagnostics_in_plain_words():
    from pai_magic.core.diagnostics import readable_diagnostics

    text = ("SucceededTaskCount 2 has reached MinSucceededTaskCount 2 in the TaskRole worker\n"
            "dockerImage x was recorded, not run.")
    assert readable_diagnostics(text) == ("2 tasks of role worker succeeded, as many as the job needs.\n"
                                          "dockerImage x was recorded, not run.")
    assert readable_diagnostics("FailedTaskCount 1 has reached MinFailedTaskCount 1 in the TaskRole taskrole") == (
        "1 task of role taskrole failed, which ends the job: see that task's log.")
    assert readable_diagnostics("Stop to complete current job attempt: user requested") == "Stopped on request."
    assert readable_diagnostics("exit code 3: out of memory") == "exit code 3: out of memory"
    assert readable_diagnostics(None) is None and readable_diagnostics("") == ""
