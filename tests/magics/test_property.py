"""Property: whatever a person types into a pai magic, only a one-line UsageError escapes,
and the shell stays usable.

The lines and cells are generated (options with odd values, quotes, unicode, junk tokens,
protocol YAML documents built from random structures and corrupted texts) and run in ONE
real InteractiveShell logged in to the real embedded backend, so line magics that reach the
cluster (%pai_jobs, %pai_job NAME, %pai_stop, %pai_logs, %pai_login) get real answers over
HTTP (fast on loopback). Cell magics carry ``--dry-run`` so random commands are never
executed; a second property submits for real, with a whitelist of harmless commands.
"""
from __future__ import annotations

import secrets
import string

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from IPython.core.error import UsageError

EXAMPLES = 2000

NAMEISH = st.text(alphabet=string.ascii_letters + string.digits + "_-~./ ", min_size=0, max_size=20)
# everything but what str.splitlines() breaks on: a magic line is one line
LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029\x00"
ANY_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters=LINE_BREAKS),
                   max_size=30)
NUMBERISH = st.one_of(st.integers(-5, 10).map(str), st.integers(-10**12, 10**12).map(str),
                      st.sampled_from(["", "1.5", "x", "0x10", "1e3", "--", "-0", "٣"]))
SIZE = st.one_of(st.sampled_from(["8G", "512M", "1.5GiB", "0", "-1G", "G", "2048", "9999999T", "1e9"]), ANY_TEXT)
STATE = st.one_of(st.sampled_from(["RUNNING", "succeeded", "FAILED", "DONE", "", "running;"]), ANY_TEXT)
TASK = st.one_of(st.sampled_from(["taskrole/0", "worker/1", "0", "a/b", "/", "x/-1", "1x/0"]), NAMEISH)
STORAGE = st.one_of(st.sampled_from(["default", "data:/mnt/d", "x:rel", ":/x", "a b"]), NAMEISH)


def quoted(values: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """A value as a person might type it: bare, quoted, or with a stray quote."""
    return st.one_of(values, values.map(lambda v: f'"{v}"'), values.map(lambda v: f"'{v}"))


def opts(pairs: dict[str, st.SearchStrategy[str] | None], junk: bool = True) -> st.SearchStrategy[str]:
    """A line of options drawn from ``pairs`` (None = a flag), plus junk tokens, in any order."""
    if not junk:
        clean = st.sampled_from(sorted(pairs)).flatmap(
            lambda name: st.just(name) if pairs[name] is None else pairs[name].map(lambda v: f"{name} {v}"))
        return st.lists(clean, max_size=5).map(" ".join)
    option = st.sampled_from(sorted(pairs)).flatmap(
        lambda name: st.just(name) if pairs[name] is None else quoted(pairs[name]).map(lambda v: f"{name} {v}"))
    noise = st.one_of(ANY_TEXT, st.sampled_from(["-", "--", "-h", "--help", "-o", "--bogus", "'", '"', "\\", "~"]))
    return st.lists(st.one_of(option, option, noise), max_size=6).map(" ".join)


JOB_OPTS = {"--image": ANY_TEXT, "--gpu": NUMBERISH, "--cpu": NUMBERISH, "--memory": SIZE, "--vc": NAMEISH,
            "--instances": NUMBERISH, "--storage": STORAGE, "--keep-alive": None, "--retry": NUMBERISH,
            "--no-wait": None, "--ssh": None, "-o": NAMEISH}
CLEAN_JOB_OPTS = {"--image": st.sampled_from(["ubuntu:22.04", "127.0.0.1:5000/a/b:c"]),
                  "--gpu": st.integers(0, 8).map(str), "--cpu": st.integers(1, 8).map(str),
                  "--memory": st.sampled_from(["512M", "8G", "1.5G"]), "--vc": st.sampled_from(["default", "q1"]),
                  "--instances": st.integers(1, 4).map(str), "--retry": st.integers(0, 3).map(str),
                  "--storage": st.sampled_from(["default", "data:/mnt/d"]), "--keep-alive": None}
JOBS_OPTS = {"--state": STATE, "--vc": NAMEISH, "--user": NAMEISH, "--all": None, "--limit": NUMBERISH}
LOGS_OPTS = {"--task": TASK, "--stderr": None}
LOGIN_OPTS = {"--user": NAMEISH, "--token": None, "--profile": NAMEISH}

SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-3, 10**6), st.floats(allow_nan=False, allow_infinity=False),
                   ANY_TEXT)
ANY_YAML = st.recursive(SCALAR, lambda kids: st.lists(kids, max_size=3) | st.dictionaries(NAMEISH, kids, max_size=3),
                        max_leaves=12)
ROLE = st.fixed_dictionaries(
    {"instances": st.one_of(st.integers(-1, 3), ANY_YAML),
     "dockerImage": st.sampled_from(["img", "missing", ""]),
     "resourcePerInstance": st.one_of(
         st.fixed_dictionaries({"cpu": st.integers(-1, 8), "memoryMB": st.integers(-1, 10**5),
                                "gpu": st.one_of(st.integers(-1, 4), ANY_YAML)}), ANY_YAML),
     "commands": st.one_of(st.lists(ANY_TEXT, max_size=3), ANY_YAML)},
    optional={"taskRetryCount": st.integers(-1, 3), "extra": ANY_YAML})
PROTOCOL = st.fixed_dictionaries(
    {"protocolVersion": st.one_of(st.just(2), st.just("2"), SCALAR),
     "taskRoles": st.one_of(st.dictionaries(st.sampled_from(["taskrole", "worker", "1bad", "a-b"]), ROLE,
                                            max_size=2), ANY_YAML)},
    optional={"name": st.one_of(NAMEISH, SCALAR), "type": st.sampled_from(["job", "x"]),
              "prerequisites": st.one_of(st.just([{"name": "img", "type": "dockerimage", "uri": "ubuntu:22.04"}]),
                                         ANY_YAML),
              "secrets": st.dictionaries(NAMEISH, ANY_TEXT, max_size=2),
              "jobRetryCount": st.one_of(st.integers(-1, 3), SCALAR),
              "defaults": st.one_of(st.just({"virtualCluster": "default"}), ANY_YAML),
              "extras": ANY_YAML})


def corrupt(text: str, data: st.DataObject) -> str:
    """Insert, delete or swap a few characters: YAML as it looks after a bad paste."""
    chars = list(text)
    for _ in range(data.draw(st.integers(0, 3))):
        if not chars:
            break
        pos = data.draw(st.integers(0, len(chars) - 1))
        what = data.draw(st.sampled_from(["del", "ins", "indent"]))
        if what == "del":
            del chars[pos]
        elif what == "ins":
            chars.insert(pos, data.draw(st.sampled_from(list(":-[]{}'\"\t #&*!|>%@`"))))
        else:
            chars.insert(pos, "  ")
    return "".join(chars)


@st.composite
def cell_body(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["commands", "protocol", "protocol", "corrupt", "yaml"]))
    if kind == "commands":
        return "\n".join(draw(st.lists(ANY_TEXT, min_size=0, max_size=4)))
    doc = draw(PROTOCOL) if kind != "yaml" else {"protocolVersion": 2, "taskRoles": draw(ANY_YAML)}
    text = yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
    if kind == "corrupt":
        text = corrupt(text, draw(st.data()))
    return text


@st.composite
def magic_input(draw: st.DrawFn, backend_url: str) -> tuple[str, str]:
    which = draw(st.sampled_from(["cell", "cell", "cell", "jobs", "job", "stop", "logs", "login", "profile"]))
    if which == "cell":
        line = draw(st.one_of(opts(JOB_OPTS), opts(CLEAN_JOB_OPTS, junk=False)))
        name = draw(st.one_of(st.just(""), NAMEISH))
        return which, f"%%pai_job --dry-run {name} {line}\n{draw(cell_body())}"
    if which == "jobs":
        return which, f"%pai_jobs {draw(opts(JOBS_OPTS))}"
    if which in ("job", "stop"):
        extra = draw(opts({"-o": NAMEISH})) if which == "job" else draw(st.one_of(st.just(""), ANY_TEXT))
        return which, f"%pai_{which} {draw(quoted(NAMEISH))} {extra}"
    if which == "logs":
        return which, f"%pai_logs {draw(quoted(NAMEISH))} {draw(opts(LOGS_OPTS))}"
    if which == "login":
        url = draw(st.sampled_from([backend_url, backend_url + "/rest-server/api/v2", "ftp://x", "http://", "::",
                                    "", "http://[::1", "https://"]))
        return which, f"%pai_login {url} {draw(opts(LOGIN_OPTS))}"
    return which, f"%pai_profile {draw(st.one_of(st.just(''), quoted(NAMEISH)))}"


def _check(pai, code: str, kinds_seen: dict[str, int], kind: str) -> None:
    result = pai.shell.run_cell(code, store_history=False)
    assert result.error_before_exec is None, (code, result.error_before_exec)
    err = result.error_in_exec
    if err is not None:
        assert isinstance(err, UsageError), (code, repr(err))
        message = str(err)
        assert message and "\n" not in message, (code, message)
        pai.outputs.append(message)
        kinds_seen[f"{kind}:error"] = kinds_seen.get(f"{kind}:error", 0) + 1
    else:
        kinds_seen[f"{kind}:ok"] = kinds_seen.get(f"{kind}:ok", 0) + 1
    usable = pai.shell.run_cell("__pai_probe = 6 * 7\n__pai_probe", store_history=False)
    assert usable.error_in_exec is None and usable.result == 42, code
    pai.capsys.readouterr()  # keep memory flat; secrets are scanned in the getpass answers below


def test_only_usage_errors_escape_and_the_shell_stays_usable(pai, monkeypatch):
    answers = st.one_of(ANY_TEXT, st.just(""), st.just(pai.backend.token[:-2] + "xx"))
    pending: list[str] = []
    monkeypatch.setattr("getpass.getpass", lambda prompt="": pending.pop() if pending else "")
    seen: dict[str, int] = {}
    ran = {"n": 0}

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                     HealthCheck.data_too_large, HealthCheck.filter_too_much])
    @given(item=magic_input(pai.backend.url), answer=answers)
    def run(item: tuple[str, str], answer: str) -> None:
        kind, code = item
        pending[:] = [answer]
        ran["n"] += 1
        _check(pai, code, seen, kind)

    run()
    assert ran["n"] >= EXAMPLES
    # the generator reached every magic, with both outcomes where both exist
    for kind in ("cell", "jobs", "job", "stop", "logs", "login", "profile"):
        assert seen.get(f"{kind}:error", 0) > 0, (kind, seen)
    assert seen.get("cell:ok", 0) > 0 and seen.get("jobs:ok", 0) > 0, seen
    # after all that, the same shell still submits and follows a real job
    handle = pai.cell("pai_job", "after_fuzz --wait", "echo still-works")
    assert handle.state() == "SUCCEEDED" and "still-works" in handle.logs()


SAFE_COMMANDS = st.lists(st.one_of(st.sampled_from(["true", "echo ok", "exit 0", "exit 3", "sleep 0.1", ": noop"]),
                                   st.text(alphabet=string.ascii_letters + string.digits, min_size=1, max_size=8)
                                   .map(lambda w: f"echo {w}")), min_size=1, max_size=3)
REAL_OPTS = {"--gpu": st.integers(-1, 2).map(str), "--cpu": st.integers(0, 2).map(str),
             "--memory": st.sampled_from(["256M", "1G", "0", "x"]), "--instances": st.integers(0, 2).map(str),
             "--retry": st.integers(-1, 1).map(str), "--vc": st.sampled_from(["default", "nope"]),
             "--storage": st.sampled_from(["default", "nope", "default:/mnt/x"]), "--no-wait": None}


def test_real_submissions_with_generated_options(pai):
    """Generated options on harmless commands, submitted for real: a job handle or a UsageError."""
    seen: dict[str, int] = {}

    @settings(max_examples=25, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(line=opts(REAL_OPTS), commands=SAFE_COMMANDS)
    def run(line: str, commands: list[str]) -> None:
        var = f"fuzz_{secrets.token_hex(4)}"
        code = f"%%pai_job fuzz {line} -o {var}\n" + "\n".join(commands)
        _check(pai, code, seen, "submit")
        if seen.get("submit:ok") and var in pai.shell.user_ns:
            assert pai.shell.user_ns[var].name.startswith("fuzz_")

    run()
    assert seen.get("submit:ok", 0) > 0 and seen.get("submit:error", 0) > 0, seen
