"""The sidebar's views in a real browser: 45 jobs paged, searched and filtered, the 40th
job's detail in view after a click (and by keyboard), clone and the YAML round trip,
images from a real docker-registry into the form, storages, switching cluster and logging
out, the layout at the default and a widened sidebar, and the dark theme with every text
colour checked for contrast.

One JupyterLab and one Chromium for the module (tests/ui/conftest.py). With
PAI_MAGIC_SCREENSHOT_DIR set, the screenshots the README shows are written there.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import re
import uuid
from pathlib import Path

import pytest

from pai_magic.local.seed import seed_jobs
from tests.ui.conftest import JOB_TIMEOUT_MS, job_row, login, open_sidebar, search_jobs, show_tab, submit_form

# WCAG AA for normal text
MIN_CONTRAST = 4.5

CONTRAST_JS = """
(root) => {
  const parse = c => {
    const m = /rgba?\\(([^)]+)\\)/.exec(c || '');
    if (m) {
      const p = m[1].split(',').map(x => parseFloat(x));
      return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1};
    }
    // what Chromium computes for color-mix(in srgb, ...): color(srgb R G B[ / A]), channels 0..1
    const s = /color\\(srgb ([^)/]+)(?:\\/([^)]+))?\\)/.exec(c || '');
    if (!s) return null;
    const p = s[1].trim().split(/\\s+/).map(x => parseFloat(x) * 255);
    return {r: p[0], g: p[1], b: p[2], a: s[2] ? parseFloat(s[2]) : 1};
  };
  const over = (top, bottom) => {
    const a = top.a + bottom.a * (1 - top.a);
    const mix = k => (top[k] * top.a + bottom[k] * bottom.a * (1 - top.a)) / a;
    return {r: mix('r'), g: mix('g'), b: mix('b'), a};
  };
  const background = el => {
    const layers = [];
    for (let n = el; n; n = n.parentElement) {
      const c = parse(getComputedStyle(n).backgroundColor);
      if (c && c.a > 0) { layers.push(c); if (c.a >= 1) break; }
    }
    let acc = {r: 255, g: 255, b: 255, a: 1};
    for (let i = layers.length - 1; i >= 0; i--) acc = over(layers[i], acc);
    return acc;
  };
  const lum = c => {
    const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b);
  };
  const ratio = (el, text) => {
    const st = getComputedStyle(el);
    const bg = background(el);
    const fg = over(parse(st.color), bg);
    const l1 = lum(fg), l2 = lum(bg);
    return {text: text.slice(0, 40), ratio: (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05),
            color: st.color, background: `rgb(${bg.r|0},${bg.g|0},${bg.b|0})`};
  };
  const shown = el => {
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && !el.closest('[hidden]') && !el.closest(':disabled') &&
           getComputedStyle(el).visibility !== 'hidden';
  };
  const out = [];
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  for (let t = walker.nextNode(); t; t = walker.nextNode()) {
    const el = t.parentElement;
    if (!t.textContent.trim() || !el || el.closest('option') || !shown(el)) continue;
    out.push(ratio(el, t.textContent.trim()));
  }
  for (const el of root.querySelectorAll('input:not([type=checkbox]):not([type=file]), textarea, select')) {
    if (shown(el) && (el.value || '').trim()) out.push(ratio(el, el.value.trim()));
  }
  return out;
}
"""


@pytest.fixture(scope="module")
def page(browser_page, lab, local_backend):
    sidebar = open_sidebar(browser_page, lab)
    login(browser_page, sidebar, local_backend)
    return browser_page


@pytest.fixture
def sidebar(page):
    return page.locator("#pai-magic-sidebar")


@pytest.fixture(scope="module")
def seeded(local_backend):
    prefix = f"many{uuid.uuid4().hex[:6]}"
    names = seed_jobs(local_backend.data_dir, local_backend.user, 45, prefix=prefix)
    # a kernel job and a notebook run (pai_magic.core.kinds names them by prefix)
    seed_jobs(local_backend.data_dir, local_backend.user, 1, prefix=f"pai-kernel-{prefix[::-1]}")
    seed_jobs(local_backend.data_dir, local_backend.user, 1, prefix=f"pai-nb-{prefix[::-1]}")
    return prefix, names


def _no_horizontal_overflow(sidebar) -> None:
    assert sidebar.evaluate("el => el.scrollWidth <= el.clientWidth + 1"), "the sidebar overflows sideways"
    clipped = sidebar.evaluate("""el => Array.from(el.querySelectorAll('button, input, select, textarea'))
        .filter(n => n.getBoundingClientRect().width > 0 && !n.closest('[hidden]')
                  && !n.closest('.pai-magic-scroll-x'))
        .filter(n => n.getBoundingClientRect().right > el.getBoundingClientRect().right + 1
                  || n.getBoundingClientRect().left < el.getBoundingClientRect().left - 1)
        .map(n => n.name || n.textContent)""")
    assert clipped == [], f"controls cut at the sidebar's edge: {clipped}"


def _placeholders_fit(sidebar) -> None:
    cut = sidebar.evaluate("""el => {
        const ctx = document.createElement('canvas').getContext('2d');
        return Array.from(el.querySelectorAll('input[placeholder], textarea[placeholder]'))
            .filter(n => n.clientWidth > 0 && !n.closest('[hidden]') && !n.value)
            .filter(n => {
                const s = getComputedStyle(n);
                ctx.font = `${s.fontStyle} ${s.fontWeight} ${s.fontSize} ${s.fontFamily}`;
                const line = n.clientWidth - parseFloat(s.paddingLeft) - parseFloat(s.paddingRight);
                // a textarea's placeholder wraps over its rows; an input's is cut at its edge
                const room = n.tagName === 'TEXTAREA' ? line * Math.max(1, n.rows) : line;
                return ctx.measureText(n.placeholder).width > room + 1;
            })
            .map(n => `${n.name}: ${n.placeholder}`);
    }""")
    assert cut == [], f"placeholders cut at the default width: {cut}"


def _in_view(sidebar, locator) -> bool:
    box = locator.bounding_box()
    frame = sidebar.bounding_box()
    bottom = frame["y"] + frame["height"] + 1
    return box is not None and frame["y"] - 1 <= box["y"] and box["y"] + min(box["height"], 60) <= bottom


def test_45_jobs_paged_filtered_and_the_40th_in_view(page, sidebar, seeded, local_backend):
    prefix, names = seeded
    search_jobs(sidebar, f"{prefix}-")
    label = sidebar.locator(".pai-magic-page-label")
    page.wait_for_function("el => el.textContent === '1\u201320 of 45'", arg=label.element_handle(), timeout=30_000)
    rows = sidebar.locator("tr.pai-magic-job")
    assert rows.count() == 20 and rows.first.get_attribute("data-job-name") == names[-1]
    assert sidebar.locator("button.pai-magic-prev").is_disabled()

    # a cut name shows whole on hover; the state is a word AND a colour
    name = rows.first.locator(".pai-magic-job-name")
    assert names[-1] in name.get_attribute("title")
    badge = rows.first.locator(".pai-magic-state")
    assert badge.inner_text() in ("SUCCEEDED", "FAILED", "STOPPED")
    dot = badge.evaluate("el => getComputedStyle(el, '::before').backgroundColor")
    assert dot not in ("rgba(0, 0, 0, 0)", "transparent")

    sidebar.locator("button.pai-magic-next").click()
    page.wait_for_function("el => el.textContent === '21\u201340 of 45'", arg=label.element_handle())
    assert rows.count() == 20
    # the 40th job: the last row of page 2; its detail is in view after the click
    fortieth = rows.nth(19)
    assert fortieth.get_attribute("data-job-name") == names[45 - 40]
    fortieth.click()
    detail = sidebar.locator(f'.pai-magic-detail[data-job-name="{names[5]}"]')
    detail.wait_for()
    page.wait_for_timeout(300)
    assert _in_view(sidebar, detail.locator(".pai-magic-detail-head")), "the detail opened below the fold"
    assert detail.locator("tr.pai-magic-task").count() == 1
    _no_horizontal_overflow(sidebar)

    sidebar.locator("button.pai-magic-next").click()
    page.wait_for_function("el => el.textContent === '41\u201345 of 45'", arg=label.element_handle())
    assert sidebar.locator("button.pai-magic-next").is_disabled()

    # filter by state: back to the first page, the total is the filtered one
    sidebar.locator('select[name="state"]').select_option("FAILED")
    page.wait_for_function("el => el.textContent === '1\u201315 of 15'", arg=label.element_handle())
    assert set(rows.evaluate_all("rs => rs.map(r => r.dataset.state)")) == {"FAILED"}
    sidebar.locator('select[name="state"]').select_option("")
    page.wait_for_function("el => el.textContent === '1\u201320 of 45'", arg=label.element_handle())

    # everyone's jobs: the names say whose they are
    sidebar.locator('select[name="scope"]').select_option("all")
    # the label reads the same before and after ("1-20 of 45"): wait for the rows themselves
    page.wait_for_function("() => (document.querySelector('#pai-magic-sidebar tr.pai-magic-job .pai-magic-job-name')"
                           " || {textContent: ''}).textContent.includes('~')", timeout=30_000)
    assert label.inner_text() == "1\u201320 of 45"
    assert rows.first.locator(".pai-magic-job-name").inner_text() == f"{local_backend.user}~{names[-1]}"
    sidebar.locator('select[name="scope"]').select_option("mine")
    page.wait_for_function("el => el.textContent === '1\u201320 of 45'", arg=label.element_handle())

    # keyboard: the tabs move with the arrow keys
    sidebar.locator('button.pai-magic-tab[data-tab="jobs"]').focus()
    page.keyboard.press("ArrowRight")
    assert sidebar.locator('[data-panel="submit"]').is_visible()
    assert page.evaluate("document.activeElement.dataset.tab") == "submit"
    page.keyboard.press("ArrowLeft")
    assert sidebar.locator('[data-panel="jobs"]').is_visible()

    # keyboard: Tab reaches a row, Enter opens its detail
    rows.nth(2).focus()
    page.keyboard.press("Enter")
    sidebar.locator(f'.pai-magic-detail[data-job-name="{names[-3]}"]').wait_for()
    page.keyboard.press("Tab")  # focus moves on inside the list, nothing traps it
    assert page.evaluate("document.activeElement.closest('#pai-magic-sidebar') !== null")


def test_kernel_and_notebook_jobs_labelled(page, sidebar, seeded):
    prefix, _names = seeded
    search_jobs(sidebar, prefix[::-1])
    kernel = sidebar.locator('tr.pai-magic-job[data-kind="kernel"]')
    notebook = sidebar.locator('tr.pai-magic-job[data-kind="notebook"]')
    assert kernel.locator(".pai-magic-kind").inner_text() == "kernel"
    assert notebook.locator(".pai-magic-kind").inner_text() == "notebook run"
    # the list is narrow: the name it shows drops the kind's prefix (else every kernel job reads
    # "pai-kerne..."); the whole name stays in the row's tooltip
    for row, full_prefix in ((kernel, "pai-kernel-"), (notebook, "pai-nb-")):
        shown = row.locator(".pai-magic-job-name")
        assert shown.inner_text().startswith(prefix[::-1]), shown.inner_text()
        assert (row.get_attribute("data-job-name") or "").startswith(full_prefix + prefix[::-1])
        assert (shown.get_attribute("title") or "").split("\n")[0].endswith(row.get_attribute("data-job-name"))
    # a notebook run's detail offers its executed notebook once the notebook-runs route has
    # it; until then (404, or the route not installed) it says so
    notebook.click()
    box = sidebar.locator(".pai-magic-detail .pai-magic-notebook")
    box.wait_for()
    assert sidebar.locator(".pai-magic-detail .pai-magic-detail-name").inner_text().startswith(prefix[::-1])
    assert "not back yet" in box.inner_text() or box.locator('button[name="open-notebook"]').count() == 1


def test_notebook_run_warning_shown_once_wrapped_and_readable(page, sidebar, lab, local_backend, monkeypatch):
    """`pai-magic run-notebook -p` on a notebook with no cell tagged `parameters` warns that the
    value went into a new first cell (a later cell setting it wins): the run's detail shows that
    line once, beside its executed notebook, wrapped inside the sidebar (a long parameter name
    included), readable in the light and the dark theme. A file the notebook wrote is listed
    under it and opens in JupyterLab."""
    from pai_magic.cli import main as cli_main
    from tests.notebook.conftest import write_notebook

    # the CLI run writes the runs index the lab's notebook route reads (tests/ui/conftest.py)
    monkeypatch.setenv("PAI_MAGIC_DATA_DIR", lab.extra_env["PAI_MAGIC_DATA_DIR"])
    monkeypatch.setenv("HOME", str(lab.root / "home"))  # no developer key: pai_magic makes its own
    for var, value in (("PAI_URL", local_backend.url), ("PAI_USER", local_backend.user),
                       ("PAI_TOKEN", local_backend.token)):
        monkeypatch.setenv(var, value)
    param = "learning_rate_of_the_first_warmup_phase_before_the_cosine_decay_starts"
    stem = f"warn{uuid.uuid4().hex[:6]}"
    nb = write_notebook(lab.root / "notebooks" / f"{stem}.ipynb", f"print({param})",
                        "import os\nos.makedirs('plots', exist_ok=True)\nopen('plots/curve.txt', 'w').write('0.5')")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli_main(["run-notebook", str(nb), "--image", "python:3.11", "-p", param, "0.5", "--name", stem,
                         "--wait", "--json"])
    assert code == 0, out.getvalue()
    data = json.loads(out.getvalue())
    assert len(data["warnings"]) == 1 and "has no cell tagged `parameters`" in data["warnings"][0], data
    job = data["runs"][0]["job"].split("~")[1]

    search_jobs(sidebar, stem)
    sidebar.locator(f'tr.pai-magic-job[data-job-name="{job}"]').click()
    detail = sidebar.locator(f'.pai-magic-detail[data-job-name="{job}"]')
    detail.locator('.pai-magic-notebook button[name="open-notebook"]').wait_for(timeout=JOB_TIMEOUT_MS)
    warning = detail.locator(".pai-magic-notebook .pai-magic-notebook-warning")
    assert warning.count() == 1
    assert warning.is_visible() and warning.inner_text() == data["warnings"][0]
    fit = warning.evaluate("""el => ({scroll: el.scrollWidth, client: el.clientWidth,
        lines: el.getBoundingClientRect().height / parseFloat(getComputedStyle(el).fontSize),
        right: el.getBoundingClientRect().right,
        edge: document.querySelector('#pai-magic-sidebar').getBoundingClientRect().right})""")
    assert fit["scroll"] <= fit["client"] and fit["right"] <= fit["edge"] + 1, fit
    assert fit["lines"] >= 3, fit  # wrapped (heights in font sizes), not cut to one line
    _no_horizontal_overflow(sidebar)
    light = warning.evaluate(CONTRAST_JS)
    _theme(page, "JupyterLab Dark", light=False)
    try:
        dark = warning.evaluate(CONTRAST_JS)
    finally:
        _theme(page, "JupyterLab Light", light=True)
    for seen in (light, dark):
        assert seen and min(r["ratio"] for r in seen) >= MIN_CONTRAST, seen
    assert light[0]["color"] != dark[0]["color"], (light, dark)  # the theme's own colour, not a fixed one
    assert warning.count() == 1  # polling did not add it again

    outputs = detail.locator(".pai-magic-notebook .pai-magic-notebook-outputs a")
    assert outputs.count() == 1 and outputs.inner_text() == "plots/curve.txt"
    line = detail.locator(".pai-magic-notebook-outputs-line").inner_text()
    assert line == "1 file the notebook wrote came back beside it: plots/curve.txt", line
    outputs.click()
    page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="curve.txt").wait_for(timeout=30_000)


def test_clone_fills_the_form_and_yaml_round_trips(page, sidebar, tmp_path):
    submit_form(sidebar, "ui_clone", "echo cloned\necho 'two words'", cpu=2, memoryMB=1024, retry=1,
                storages="default:/data")
    row = job_row(sidebar, "ui_clone")
    search_jobs(sidebar, "ui_clone_")
    row.wait_for(timeout=JOB_TIMEOUT_MS)
    row.locator(".pai-magic-job-name").click()
    detail = sidebar.locator(".pai-magic-detail")
    detail.locator('button[name="clone"]').click()
    form = sidebar.locator('[data-panel="submit"]')
    form.wait_for(state="visible")

    def values():
        return {n: form.locator(f'[name="{n}"]').input_value()
                for n in ("name", "image", "commands", "cpu", "memoryMB", "retry", "instances", "gpu", "storages")}

    cloned = values()
    assert cloned == {"name": "ui_clone", "image": "ubuntu:22.04", "commands": "echo cloned\necho 'two words'",
                      "cpu": "2", "memoryMB": "1024", "retry": "1", "instances": "1", "gpu": "0",
                      "storages": "default:/data"}
    assert not form.locator('input[name="ssh"]').is_checked()
    assert not form.locator('input[name="keepAlive"]').is_checked()
    _no_horizontal_overflow(sidebar)
    _shot(page, sidebar, "sidebar-submit.png", tmp_path)

    # export, wipe the form, import the YAML: the same form
    form.locator('input[name="keepAlive"]').check()
    yaml_box = form.locator('textarea[name="yaml"]')
    yaml_box.fill("")
    form.locator('button[name="export"]').click()
    page.wait_for_function("el => el.value.includes('memoryMB: 1024')", arg=yaml_box.element_handle())
    text = yaml_box.input_value()
    assert "sleep infinity" in text and "name: ui_clone_" in text and "cpu: 2" in text
    for name in ("name", "cpu", "memoryMB", "storages"):
        form.locator(f'input[name="{name}"]').fill("")
    form.locator('textarea[name="commands"]').fill("")
    form.locator('input[name="keepAlive"]').uncheck()
    form.locator('button[name="import"]').click()
    page.wait_for_function("el => el.value === '1024'", arg=form.locator('input[name="memoryMB"]').element_handle())
    assert values() == cloned
    assert form.locator('input[name="keepAlive"]').is_checked()  # a separate choice, not folded into commands

    # a YAML the form cannot hold says so and stays as YAML
    two_roles = text.replace("taskRoles:\n  taskrole:", "taskRoles:\n  other:\n    instances: 1\n"
                             "    dockerImage: docker_image_0\n"
                             "    resourcePerInstance: {cpu: 1, memoryMB: 512, gpu: 0}\n"
                             "    commands: ['true']\n  taskrole:")
    yaml_box.fill(two_roles)
    form.locator('button[name="import"]').click()
    message = form.locator(".pai-magic-form-message")
    page.wait_for_function("el => el.textContent.includes('task roles')", arg=message.element_handle())


def test_images_from_a_real_registry_into_the_form(page, sidebar, lab, registry, monkeypatch, tmp_path):
    from pai_magic.core.profiles import update_profile
    from tests.fixtures.registry import seed_repositories

    seed_repositories(registry.url, ["team/train", "team/serve", "base/cuda"], tags=("v1", "v2"))
    monkeypatch.setenv("PAI_MAGIC_CONFIG_DIR", str(lab.pai_config_dir))
    profile = json.loads(lab.get("pai-magic/api/status").text)["profile"]
    update_profile(profile, registry_url=registry.url)
    try:
        images = show_tab(sidebar, "images")
        images.locator('button[name="list-images"]').click()
        repo = images.locator('li.pai-magic-repo[data-repository="team/train"]')
        repo.wait_for()
        page.wait_for_function("el => el.textContent.includes(' repositories in ')",
                               arg=images.locator(".pai-magic-muted").first.element_handle())
        listed = images.locator("li.pai-magic-repo").evaluate_all("ns => ns.map(n => n.dataset.repository)")
        assert {"team/train", "team/serve", "base/cuda"} <= set(listed)
        assert registry.host in images.inner_text()
        images.locator('input[name="image-filter"]').fill("team/*")
        images.locator('button[name="list-images"]').click()
        images.locator('ul.pai-magic-repos[data-filter="team/*"]').wait_for(state="attached")
        assert images.locator("li.pai-magic-repo").count() == 2
        assert "base/cuda" not in images.locator(".pai-magic-repos").inner_text()
        repo.focus()
        page.keyboard.press("Enter")  # keyboard reachable
        tag = images.locator('tr.pai-magic-tag[data-tag="v1"]')
        tag.wait_for()
        cells = tag.locator("td").all_inner_texts()
        assert cells[0] == "v1" and cells[1] == "0 B" and cells[3] == "linux/amd64", cells
        assert cells[2], "no created date"
        _no_horizontal_overflow(sidebar)
        _shot(page, sidebar, "sidebar-images.png", tmp_path)
        tag.locator("button.pai-magic-use").click()
        form = sidebar.locator('[data-panel="submit"]')
        form.wait_for(state="visible")
        assert form.locator('input[name="image"]').input_value() == f"{registry.host}/team/train:v1"
    finally:
        update_profile(profile, registry_url=None)


def test_storages_with_mount_state_into_the_form(page, sidebar, lab, monkeypatch):
    from pai_magic.core.storage import state

    storage = show_tab(sidebar, "storage")
    item = storage.locator('.pai-magic-storage-item[data-storage="default"]')
    item.wait_for()
    assert item.get_attribute("data-mounted") == "false"
    assert "Not mounted here" in item.inner_text() and "/mnt/default" in item.inner_text()
    assert item.locator(".pai-magic-mount-command").get_attribute("title").startswith("sudo mount -t nfs")
    # the command is cut at the sidebar's width: a Copy button beside it says it copied
    copy = item.locator('button[name="copy-mount-command"]')
    copy.wait_for(state="visible")
    said = copy.evaluate("""el => new Promise(done => {
        el.addEventListener('click', () => setTimeout(() => done(el.textContent), 0), {once: true});
        el.click();
    })""")
    assert said == "Copied"
    sidebar.locator('[data-panel="submit"] input[name="storages"]').evaluate("el => el.value = ''")
    item.locator("button.pai-magic-use").click()
    assert sidebar.locator('[data-panel="submit"] input[name="storages"]').input_value() == "default"

    # mounted here (a real tmpfs recorded as pai_magic's mount of it): where, and how full
    monkeypatch.setenv("PAI_MAGIC_CONFIG_DIR", str(lab.pai_config_dir))
    state.add_record(state.MountRecord("/dev/shm", "nfs", "127.0.0.1:/elsewhere", storage="default"))
    try:
        storage = show_tab(sidebar, "storage")
        storage.locator('button[name="refresh-storages"]').click()
        mounted = storage.locator('.pai-magic-storage-item[data-storage="default"][data-mounted="true"]')
        mounted.wait_for()
        assert "Mounted here at /dev/shm" in mounted.inner_text() and " free" in mounted.inner_text()
        assert 0 <= mounted.locator("meter").evaluate("m => m.value") <= 1
    finally:
        state.remove_record("/dev/shm")


def test_switch_cluster_and_log_out(page, sidebar, lab, local_backend):
    resp = lab.post("pai-magic/api/login", json={"url": local_backend.url, "user": local_backend.user,
                                                 "password": local_backend.password, "profile": "second"})
    assert resp.status_code == 200, resp.text
    cluster = sidebar.locator('[data-testid="pai-magic-cluster"]')
    select = sidebar.locator('select[name="profile"]')
    select.focus()  # the list is re-read when opened
    page.wait_for_function("el => Array.from(el.options).some(o => o.value === 'second')",
                           arg=select.element_handle())
    first = [v for v in select.evaluate("el => Array.from(el.options).map(o => o.value)") if v != "second"][0]
    select.select_option(first)
    page.wait_for_function(f"el => el.textContent.includes('(profile {first})')", arg=cluster.element_handle())

    sidebar.locator('button[name="logout"]').click()
    page.wait_for_function("el => el.dataset.loggedIn === 'false'", arg=cluster.element_handle())
    # the focus moves to the login form (not dropped to the page with the hidden button)
    page.wait_for_function("() => document.activeElement && document.activeElement.name === 'password'",
                           timeout=30_000)
    assert "log in below" in cluster.inner_text()
    assert sidebar.locator("form.pai-magic-login").is_visible()
    assert sidebar.locator(".pai-magic-tabs").is_hidden()
    # a wrong password: one line in the person's words (no API error code), the caret back in
    # the emptied password field
    form = sidebar.locator("form.pai-magic-login")
    form.locator('input[name="url"]').fill(local_backend.url)
    form.locator('input[name="user"]').fill(local_backend.user)
    form.locator('input[name="password"]').fill("not-the-password")
    form.locator('button[name="login"]').click()
    refused = form.locator(".pai-magic-form-error")
    refused.wait_for(state="visible", timeout=30_000)
    assert "wrong user name or password" in refused.inner_text()
    assert "\n" not in refused.inner_text().strip() and not re.search(r"\(\w*Error\)|\(\d{3}\)", refused.inner_text())
    password = form.locator('input[name="password"]')
    page.wait_for_function("el => document.activeElement === el", arg=password.element_handle(), timeout=30_000)
    assert password.input_value() == ""
    login(page, sidebar, local_backend)
    assert sidebar.locator(".pai-magic-tabs").is_visible()


LONG_PROFILE = "gpu-cluster-building-7-shared-a100-partition-of-the-vision-team"
# The chosen profile's face: the state's box inside the picker's, the picker's inside the
# part of the sidebar one sees (it hides what overflows sideways), the name cut instead.
PICKER_GEOMETRY_JS = """
el => {
  const picker = el.querySelector('.pai-magic-profile-picker');
  const name = picker.querySelector('.pai-magic-profile-name');
  const state = picker.querySelector('.pai-magic-profile-state');
  const p = picker.getBoundingClientRect(), s = state.getBoundingClientRect();
  const side = el.getBoundingClientRect();
  const seen = {left: side.left, right: side.left + el.clientWidth};
  return {
    width: el.clientWidth, state: state.innerText,
    stateInPicker: s.width > 0 && s.left >= p.left && s.right <= p.right && s.top >= p.top && s.bottom <= p.bottom,
    pickerSeen: p.left >= seen.left && p.right <= seen.right,
    nameCut: name.scrollWidth > name.clientWidth && name.clientWidth > 20,
  };
}
"""


def _drag_split(page, dx: float) -> None:
    handle = page.locator("#jp-main-split-panel > .lm-SplitPanel-handle").first
    hb = handle.bounding_box()
    page.mouse.move(hb["x"] + hb["width"] / 2, hb["y"] + 200)
    page.mouse.down()
    page.mouse.move(hb["x"] + hb["width"] / 2 + dx, hb["y"] + 200, steps=8)
    page.mouse.up()


def _theme(page, name: str, light: bool) -> None:
    """Settings > Theme > name, as a person switches it (the page is not reloaded)."""
    page.locator(".lm-MenuBar-itemLabel", has_text="Settings").click()
    page.locator(".lm-Menu-itemLabel", has_text="Theme").first.hover()
    page.locator(".lm-Menu-itemLabel").get_by_text(name, exact=True).click()
    page.wait_for_function(f"() => document.body.dataset.jpThemeLight === '{str(light).lower()}'", timeout=60_000)


def test_long_logged_out_profile_keeps_its_state_in_view(page, sidebar, lab, local_backend, monkeypatch):
    """A closed <select> cut "name (logged out)" at its edge: the state was lost with a long
    name. The picker cuts the name and keeps the state, at the default (and narrowest) and a
    widened width, in the light and the dark theme; the whole name is in its tooltip."""
    from pai_magic.core.profiles import Profile, remove_profile, save_profile

    monkeypatch.setenv("PAI_MAGIC_CONFIG_DIR", str(lab.pai_config_dir))
    save_profile(Profile(name=LONG_PROFILE, url=local_backend.url, user=local_backend.user, token=""),
                 activate=False)
    cluster = sidebar.locator('[data-testid="pai-magic-cluster"]')
    select = sidebar.locator('select[name="profile"]')
    select.focus()  # the list is re-read when opened
    page.wait_for_function(f"el => Array.from(el.options).some(o => o.value === '{LONG_PROFILE}')",
                           arg=select.element_handle())
    back_to = select.input_value()  # the profile logged in now
    assert back_to and back_to != LONG_PROFILE
    widened = False
    try:
        select.select_option(LONG_PROFILE)
        page.wait_for_function("el => el.dataset.loggedIn === 'false'", arg=cluster.element_handle())
        picker = sidebar.locator('.pai-magic-profile-picker[data-logged-in="false"]')
        picker.wait_for()
        assert select.get_attribute("title").startswith(f"{LONG_PROFILE} (logged out): ")
        assert "(logged out)" in select.locator("option:checked").inner_text()  # the open list says it too

        # JupyterLab's default width for the left area is also the narrowest it lets one drag it to
        narrowest = sidebar.evaluate(PICKER_GEOMETRY_JS)
        _drag_split(page, 300)
        widened = True
        page.wait_for_function(f"() => document.querySelector('#pai-magic-sidebar').clientWidth > {narrowest['width'] + 200}")
        wide = sidebar.evaluate(PICKER_GEOMETRY_JS)
        _no_horizontal_overflow(sidebar)
        _drag_split(page, -300)  # back to the default (the next test's screenshots are taken there)
        widened = False
        page.wait_for_function(f"() => document.querySelector('#pai-magic-sidebar').clientWidth <= {narrowest['width']}")
        _theme(page, "JupyterLab Dark", light=False)
        try:
            dark = sidebar.evaluate(PICKER_GEOMETRY_JS)
            face = sidebar.locator(".pai-magic-profile-face")
            texts = face.evaluate(CONTRAST_JS)
            assert [t["text"] for t in texts] == [LONG_PROFILE[:40], "(logged out)"], texts
            assert all(sum(map(int, re.findall(r"\d+", t["background"]))) < 3 * 100 for t in texts), texts  # dark
            poor = [r for r in texts if r["ratio"] < MIN_CONTRAST]
            assert poor == [], f"the picker's text is unreadable in the dark theme: {poor}"
        finally:
            _theme(page, "JupyterLab Light", light=True)
        for seen in (narrowest, wide, dark):
            assert seen["state"] == "(logged out)" and seen["stateInPicker"] and seen["pickerSeen"], seen
        assert narrowest["nameCut"] and dark["nameCut"], (narrowest, dark)
    finally:
        if widened:
            _drag_split(page, -300)
        select.select_option(back_to)
        page.wait_for_function("el => el.dataset.loggedIn === 'true'", arg=cluster.element_handle())
        remove_profile(LONG_PROFILE)


def _shot(page, sidebar, name: str, tmp: Path) -> None:
    """The left area (icons and sidebar), from the top of the sidebar, the way a person sees it."""
    target = Path(os.environ.get("PAI_MAGIC_SCREENSHOT_DIR") or tmp)
    target.mkdir(parents=True, exist_ok=True)
    sidebar.evaluate("el => { el.scrollTop = 0; }")
    page.wait_for_timeout(200)
    box = page.locator("#jp-left-stack").bounding_box() or sidebar.bounding_box()
    page.screenshot(path=str(target / name), clip={"x": 0, "y": 0, "width": box["x"] + box["width"] + 2,
                                                   "height": page.viewport_size["height"]})


def test_layout_widened_and_dark_theme_readable(page, sidebar, lab, seeded, tmp_path):
    prefix, names = seeded
    page.set_viewport_size({"width": 1400, "height": 1250})  # the whole sidebar in the screenshots
    form = show_tab(sidebar, "submit")
    for name in ("virtualCluster", "storages"):
        form.locator(f'input[name="{name}"]').fill("")
    _placeholders_fit(sidebar)
    search_jobs(sidebar, f"{prefix}-")
    _placeholders_fit(sidebar)
    page.wait_for_function("() => document.querySelectorAll('tr.pai-magic-job').length > 0")
    sidebar.locator("tr.pai-magic-job").first.click()
    sidebar.locator(".pai-magic-detail tr.pai-magic-task").first.wait_for()
    _no_horizontal_overflow(sidebar)
    _shot(page, sidebar, "sidebar-light.png", tmp_path)

    # widened: drag the split handle; still nothing cut, the task table shows as a table
    handle = page.locator("#jp-main-split-panel > .lm-SplitPanel-handle").first
    hb = handle.bounding_box()
    page.mouse.move(hb["x"] + hb["width"] / 2, hb["y"] + 200)
    page.mouse.down()
    page.mouse.move(hb["x"] + 400, hb["y"] + 200, steps=8)
    page.mouse.up()
    page.wait_for_function("() => document.querySelector('#pai-magic-sidebar').clientWidth > 500")
    _no_horizontal_overflow(sidebar)
    assert sidebar.locator(".pai-magic-tasks thead").is_visible()
    _shot(page, sidebar, "sidebar-wide.png", tmp_path)

    # dark theme: every text colour computed in the page is readable on its background
    resp = lab.request("PUT", "lab/api/settings/@jupyterlab/apputils-extension:themes",
                       json={"raw": json.dumps({"theme": "JupyterLab Dark"})})
    assert resp.status_code in (200, 204), resp.text
    try:
        open_sidebar(page, lab)
        page.wait_for_function("() => document.body.dataset.jpThemeLight === 'false'", timeout=60_000)
        search_jobs(sidebar, f"{prefix}-")
        page.wait_for_function("() => document.querySelectorAll('tr.pai-magic-job').length > 0")
        sidebar.locator("tr.pai-magic-job").first.click()
        sidebar.locator('.pai-magic-log:not([data-state="loading"])').wait_for(timeout=JOB_TIMEOUT_MS)
        results = sidebar.evaluate(CONTRAST_JS)
        assert len(results) > 20
        poor = [r for r in results if r["ratio"] < MIN_CONTRAST]
        assert poor == [], f"unreadable text in the dark theme: {poor[:5]}"
        _shot(page, sidebar, "sidebar-dark.png", tmp_path)
        assert re.search(r"\d", sidebar.locator(".pai-magic-page-label").inner_text())
        # the first page: "Newer" is disabled and looks it (JupyterLab's dark theme alone draws
        # it as bright as the enabled "Older")
        newer, older = sidebar.locator("button.pai-magic-prev"), sidebar.locator("button.pai-magic-next")
        assert newer.is_disabled() and older.is_enabled()
        color = "el => getComputedStyle(el).color"
        assert newer.evaluate(color) != older.evaluate(color)
    finally:
        lab.request("PUT", "lab/api/settings/@jupyterlab/apputils-extension:themes",
                    json={"raw": json.dumps({"theme": "JupyterLab Light"})})
