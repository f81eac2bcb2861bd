/**
 * One job: state, diagnostics, actions (stop, clone, open in terminal, the executed
 * notebook of a notebook run), the task table (task, state, IP, ports, exit code,
 * attempt), SSH commands with copy, and the log of any task (stdout or stderr, following
 * the end while the job runs).
 *
 * Parts are updated in place, and only when what they show changed, so a refresh never
 * resets a "Copied", a chosen stream or the log's scroll position.
 */

import { PaiRequestError, requestAPI } from './request';
import {
  IJobDetail,
  ILog,
  INotebookRun,
  ISshCommand,
  ISshInfo,
  ITask,
  TERMINAL_STATES
} from './types';
import { button, copyButton, el, ellipsized, selectInput, stateBadge } from './dom';

/** Lines of the log shown; the server is asked for a bit more than that many characters. */
const LOG_LINES = 200;
const LOG_TAIL_CHARS = 65536;
/** Files of a notebook run linked in its detail; the outputs line counts the rest. */
const MAX_OUTPUT_LINKS = 20;

/**
 * Each SSH line with its task and kind. Servers without `commands` only send the lines
 * (the portal's command, then the same with `-i` and pai_magic's key), so the kind is read
 * from the `-i` there.
 */
export function sshCommands(ssh: ISshInfo): ISshCommand[] {
  if (ssh.commands && ssh.commands.length > 0) {
    return ssh.commands;
  }
  return ssh.lines.map(line => ({
    task: '',
    kind: / -i \S/.test(line) ? 'key' : 'portal',
    line
  }));
}

export function sshLabel(command: ISshCommand): string {
  const task = command.task ? `${command.task}: ` : '';
  return command.kind === 'key'
    ? `${task}with pai_magic's key (-i): works as is`
    : `${task}the portal's command: needs your default SSH key or ssh-agent`;
}

function portsText(task: ITask): string {
  return Object.entries(task.ports || {})
    .map(([name, ports]) => `${name}: ${ports.join(',')}`)
    .join('; ');
}

export interface IDetailOptions {
  stop: (full: string, node: HTMLButtonElement) => void;
  clone: (full: string) => void;
  openTerminal?: (command: string) => Promise<void>;
  openFile?: (path: string) => void;
  error: (message: string | null) => void;
}

export class JobDetailView {
  readonly node: HTMLElement;

  constructor(private _options: IDetailOptions) {
    this.node = el('div', 'pai-magic-detail');
    this.node.hidden = true;
    this.node.setAttribute('aria-live', 'polite');
    this._build();
  }

  get selected(): string | null {
    return this._full;
  }

  /** Show a job (USER~NAME): loads it, then keeps its detail in view. */
  async show(full: string): Promise<void> {
    if (this._full !== full) {
      this._full = full;
      this._task = null;
      this._last = null;
      this._shownKeys = {};
      this._notebookPath = undefined;
      this._resetLog('Loading...');
    }
    this.node.hidden = false;
    this._scrollPending = true;
    await this.refresh();
  }

  hide(): void {
    this._full = null;
    this.node.hidden = true;
  }

  /**
   * Whether a poll tick should re-read the shown job: a finished job does not change
   * (its final log was read once), except that a notebook run's executed notebook may
   * come back after it ended.
   */
  get needsPolling(): boolean {
    const last = this._last;
    if (!this._full || !last || !TERMINAL_STATES.has(last.state)) {
      return !!this._full;
    }
    return last.kind === 'notebook' && !this._notebookPath;
  }

  /** One refresh of the shown job (called by each poll tick while its tab is shown). */
  async refresh(): Promise<void> {
    const full = this._full;
    if (!full) {
      return;
    }
    const path = `jobs/${encodeURIComponent(full)}`;
    const detail = await requestAPI<IJobDetail>(path);
    let ssh: ISshInfo | null = null;
    if (detail.state === 'RUNNING') {
      ssh = await requestAPI<ISshInfo>(`${path}/ssh`).catch(() => null);
    }
    if (this._full !== full) {
      return; // another job was chosen meanwhile
    }
    this._last = detail;
    this._renderHead(full, detail);
    this._renderTasks(full, detail);
    this._renderSsh(ssh);
    if (this._scrollPending) {
      // at once, before the log is read: the person looks at it now, and a scroll that
      // came later would move what they are about to click
      this._scrollPending = false;
      this.node.scrollIntoView({ block: 'start' });
    }
    if (detail.kind === 'notebook') {
      await this._refreshNotebook(full, detail);
    }
    await this._refreshLog(full, detail);
  }

  // ---- building ----------------------------------------------------------------------------

  private _build(): void {
    this._head = el('div', 'pai-magic-detail-head');
    this.node.appendChild(this._head);
    this._actions = el('div', 'pai-magic-buttons pai-magic-detail-actions');
    this.node.appendChild(this._actions);
    this._notebook = el('div', 'pai-magic-notebook');
    this._notebook.hidden = true;
    this.node.appendChild(this._notebook);
    const tableWrap = el('div', 'pai-magic-scroll-x');
    this._tasks = el('table', 'pai-magic-table pai-magic-tasks');
    this._tasks.setAttribute('aria-label', 'Tasks');
    const head = this._tasks.createTHead().insertRow();
    for (const title of ['Task', 'State', 'IP', 'Ports', 'Exit', 'Attempt', '']) {
      head.appendChild(el('th', '', title));
    }
    this._tasksBody = this._tasks.createTBody();
    tableWrap.appendChild(this._tasks);
    this.node.appendChild(tableWrap);
    this._ssh = el('div', 'pai-magic-ssh');
    this._ssh.hidden = true;
    this.node.appendChild(this._ssh);

    // the log: task, stream and follow survive refreshes (this box is never rebuilt)
    this._logBox = el('div', 'pai-magic-log');
    const header = el('div', 'pai-magic-log-header');
    this._logTitle = el('h4', 'pai-magic-ellipsis', 'Log');
    header.appendChild(this._logTitle);
    this._streamSelect = selectInput('stream', [
      ['stdout', 'stdout'],
      ['stderr', 'stderr']
    ]);
    this._streamSelect.setAttribute('aria-label', 'Log stream');
    header.appendChild(this._streamSelect);
    const followWrap = el('label', 'pai-magic-checkbox');
    this._follow = el('input', '');
    this._follow.type = 'checkbox';
    this._follow.name = 'follow';
    this._follow.checked = true;
    followWrap.appendChild(this._follow);
    followWrap.appendChild(document.createTextNode(' follow'));
    followWrap.title = 'Re-read the end of the log while the job runs';
    header.appendChild(followWrap);
    this._logBox.appendChild(header);
    this._logMessage = el('div', 'pai-magic-log-message');
    this._logBox.appendChild(this._logMessage);
    this._logText = el('pre', 'pai-magic-log-text');
    this._logText.tabIndex = 0;
    this._logText.setAttribute('aria-label', 'Log text');
    this._logBox.appendChild(this._logText);
    this._streamSelect.addEventListener('change', () => this._reloadLog());
    this._follow.addEventListener('change', () => {
      if (this._follow.checked) {
        this._reloadLog();
      }
    });
    this.node.appendChild(this._logBox);
  }

  // ---- rendering ---------------------------------------------------------------------------

  /** Rebuild `node` only when `key` changed since the last time. */
  private _changed(part: string, key: string): boolean {
    if (this._shownKeys[part] === key) {
      return false;
    }
    this._shownKeys[part] = key;
    return true;
  }

  private _renderHead(full: string, detail: IJobDetail): void {
    this.node.dataset.jobName = detail.name;
    this.node.dataset.fullName = full;
    this.node.dataset.state = detail.state;
    const key = JSON.stringify([full, detail.state, detail.exitCode, detail.diagnostics, detail.retries]);
    if (!this._changed('head', key)) {
      return;
    }
    const head = this._head;
    head.textContent = '';
    const title = el('h3', 'pai-magic-detail-title');
    title.appendChild(ellipsized('pai-magic-detail-name', detail.shortName || detail.name, full));
    if (detail.kindLabel) {
      title.appendChild(el('span', `pai-magic-kind pai-magic-kind-${detail.kind}`, detail.kindLabel));
    }
    head.appendChild(title);
    const line = el('div', 'pai-magic-detail-state');
    line.appendChild(stateBadge(detail.state));
    const extra = [
      detail.exitCode !== null ? `exit code ${detail.exitCode}` : '',
      detail.retries ? `${detail.retries} retries` : '',
      detail.virtualCluster ? `VC ${detail.virtualCluster}` : ''
    ].filter(Boolean);
    if (extra.length) {
      line.appendChild(el('span', 'pai-magic-muted', ` ${extra.join(', ')}`));
    }
    head.appendChild(line);
    if (detail.diagnostics) {
      head.appendChild(el('div', 'pai-magic-diagnostics', detail.diagnostics));
    }

    const actions = this._actions;
    actions.textContent = '';
    if (!TERMINAL_STATES.has(detail.state)) {
      const stop = button('Stop', 'pai-magic-stop jp-mod-warn');
      stop.name = 'stop';
      stop.addEventListener('click', () => this._options.stop(full, stop));
      actions.appendChild(stop);
    }
    const clone = button('Clone', 'pai-magic-clone');
    clone.name = 'clone';
    clone.title = 'Fill the submit form with this job\'s config';
    clone.addEventListener('click', () => this._options.clone(full));
    actions.appendChild(clone);
  }

  private _renderTasks(full: string, detail: IJobDetail): void {
    if (this._task === null && detail.tasks.length > 0) {
      this._task = `${detail.tasks[0].role}/${detail.tasks[0].index}`;
    }
    const key = JSON.stringify([full, this._task, detail.tasks]);
    if (!this._changed('tasks', key)) {
      return;
    }
    const body = this._tasksBody;
    body.textContent = '';
    if (detail.tasks.length === 0) {
      const cell = body.insertRow().insertCell();
      cell.colSpan = 7;
      cell.className = 'pai-magic-empty';
      cell.textContent = 'No task yet.';
    }
    for (const task of detail.tasks) {
      const name = `${task.role}/${task.index}`;
      const row = body.insertRow();
      row.className = 'pai-magic-task';
      row.dataset.task = name;
      row.dataset.state = task.state;
      if (name === this._task) {
        row.classList.add('pai-magic-selected');
      }
      // data-label: the column's name, shown before the value when the narrow
      // layout stacks a row's cells (base.css, container query)
      const cell = (label: string, cls: string) => {
        const node = row.insertCell();
        node.dataset.label = label;
        node.className = cls;
        return node;
      };
      cell('Task', 'pai-magic-task-cell').appendChild(ellipsized('pai-magic-task-name', name));
      cell('State', 'pai-magic-task-state').appendChild(stateBadge(task.state));
      cell('IP', 'pai-magic-task-ip').textContent = task.containerIp ?? '';
      cell('Ports', 'pai-magic-task-ports').appendChild(ellipsized('pai-magic-ports', portsText(task)));
      cell('Exit', 'pai-magic-task-exit').textContent = task.exitCode === null ? '' : String(task.exitCode);
      cell('Attempt', 'pai-magic-task-attempt').textContent = String(task.retries ?? 0);
      const actions = cell('', 'pai-magic-actions');
      const logs = button('Log', 'pai-magic-task-log');
      logs.title = `Show the log of ${name}`;
      logs.addEventListener('click', () => {
        this._task = name;
        for (const other of Array.from(body.rows)) {
          other.classList.toggle('pai-magic-selected', other.dataset.task === name);
        }
        this._shownKeys.tasks = '';
        this._reloadLog();
      });
      actions.appendChild(logs);
      const command = task.terminalCommand;
      if (task.state === 'RUNNING' && command && this._options.openTerminal) {
        const term = button('Terminal', 'pai-magic-terminal');
        term.title = `Open a JupyterLab terminal running: ${command}`;
        term.dataset.command = command;
        term.addEventListener('click', () => {
          this._options.openTerminal!(command).catch(error => this._options.error((error as Error).message));
        });
        actions.appendChild(term);
      }
    }
  }

  private _renderSsh(ssh: ISshInfo | null): void {
    const commands = ssh ? sshCommands(ssh) : [];
    const key = JSON.stringify([ssh?.message ?? null, commands]);
    if (!this._changed('ssh', key)) {
      return;
    }
    const box = this._ssh;
    box.textContent = '';
    box.hidden = !ssh;
    if (!ssh) {
      return;
    }
    box.appendChild(el('h4', '', 'SSH'));
    if (ssh.message) {
      box.appendChild(el('div', 'pai-magic-ssh-message', ssh.message));
    }
    for (const command of commands) {
      const line = command.line;
      box.appendChild(el('div', 'pai-magic-ssh-label', sshLabel(command)));
      const row = el('div', 'pai-magic-ssh-line');
      row.dataset.kind = command.kind;
      const code = el('code', 'pai-magic-ellipsis', line);
      code.title = line;
      row.appendChild(code);
      row.appendChild(copyButton(line));
      box.appendChild(row);
    }
  }

  /**
   * A notebook run's executed notebook (the notebook-runs route): a link once it is back,
   * "not back yet" while the route answers 404 (or is not installed); below it, each of the
   * run's warnings once (e.g. parameters set in a new first cell: a later cell may override
   * them, which is why the person must see it where they open the result). Between them,
   * the files the notebook wrote that came back, each opening in JupyterLab, and the line
   * about them (what stayed in the task over the limit included).
   */
  private async _refreshNotebook(full: string, detail: IJobDetail): Promise<void> {
    if (this._notebookPath) {
      return; // found: it does not move
    }
    let path: string | null = null;
    let warnings: string[] = [];
    let outputs: INotebookRun['outputs'] = [];
    let outputsMessage = '';
    try {
      const run = await requestAPI<INotebookRun>(`jobs/${encodeURIComponent(full)}/notebook`);
      path = run.path;
      warnings = Array.from(new Set(run.warnings ?? []));
      outputs = run.outputs ?? [];
      outputsMessage = run.outputs_message ?? '';
    } catch (error) {
      if (!(error instanceof PaiRequestError && error.status === 404)) {
        return;
      }
    }
    if (this._full !== full) {
      return;
    }
    const box = this._notebook;
    box.hidden = false;
    box.textContent = '';
    if (path) {
      this._notebookPath = path;
      const open = button('Open executed notebook', 'pai-magic-open-notebook');
      open.name = 'open-notebook';
      open.title = path;
      open.addEventListener('click', () => this._options.openFile?.(path!));
      box.appendChild(open);
      this._showOutputs(box, outputs, outputsMessage);
    } else {
      box.appendChild(
        el(
          'span',
          'pai-magic-muted',
          TERMINAL_STATES.has(detail.state)
            ? 'The executed notebook is not back yet.'
            : 'The executed notebook comes back when the run ends.'
        )
      );
    }
    for (const warning of warnings) {
      const line = el('div', 'pai-magic-notebook-warning', warning);
      line.setAttribute('role', 'note');
      box.appendChild(line);
    }
  }

  /** At most MAX_OUTPUT_LINKS files as links (the line counts them all). */
  private _showOutputs(box: HTMLElement, outputs: INotebookRun['outputs'], message: string): void {
    const files = outputs ?? [];
    if (files.length) {
      const list = el('ul', 'pai-magic-notebook-outputs');
      list.setAttribute('aria-label', 'Files the notebook wrote');
      for (const file of files.slice(0, MAX_OUTPUT_LINKS)) {
        const item = el('li', '');
        const target = file.path;
        if (target) {
          const link = el('a', 'pai-magic-output-file', file.name);
          link.href = '#';
          link.title = target;
          link.addEventListener('click', event => {
            event.preventDefault();
            this._options.openFile?.(target);
          });
          item.appendChild(link);
        } else {
          item.appendChild(el('span', 'pai-magic-muted', file.name));
        }
        list.appendChild(item);
      }
      box.appendChild(list);
    }
    if (message) {
      box.appendChild(el('div', 'pai-magic-notebook-outputs-line pai-magic-muted', message));
    }
  }

  private _reloadLog(): void {
    this._logFinalKey = null;
    this._showLogMessage('Loading...', 'loading');
    const full = this._full;
    if (full && this._last) {
      this._refreshLog(full, this._last).catch(error =>
        this._showLogMessage((error as Error).message, 'error')
      );
    }
  }

  /**
   * Read the end of the chosen task's log. Once the job is finished its log cannot change,
   * so it is read one last time and then left alone; while it runs, it is re-read on each
   * tick only when "follow" is on.
   */
  private async _refreshLog(full: string, detail: IJobDetail): Promise<void> {
    const stream = this._streamSelect.value;
    const task = this._task;
    if (!task) {
      this._logTitle.textContent = 'Log';
      this._showLogMessage('No log yet: the job has no task yet.', 'none');
      return;
    }
    const key = `${full}|${task}|${stream}`;
    const terminal = TERMINAL_STATES.has(detail.state);
    if (this._logFinalKey === key && (terminal || !this._follow.checked)) {
      return;
    }
    this._logTitle.textContent = `Log of ${task}`;
    this._logTitle.title = `${full} ${task} ${stream}`;
    this._logBox.dataset.task = task;
    this._logBox.dataset.stream = stream;
    const query = `task=${encodeURIComponent(task)}&stream=${stream}&tail=${LOG_TAIL_CHARS}`;
    let log: ILog;
    try {
      log = await requestAPI<ILog>(`jobs/${encodeURIComponent(full)}/logs?${query}`);
    } catch (error) {
      if (this._full !== full || this._streamSelect.value !== stream || this._task !== task) {
        return;
      }
      if (error instanceof PaiRequestError && error.code === 'NoTaskLogError') {
        this._showLogMessage(
          terminal
            ? `No ${stream} log: ${task} never started.`
            : `No log yet: ${task} has not started; it shows here once it runs.`,
          'none'
        );
        if (terminal) {
          this._logFinalKey = key;
        }
      } else {
        this._showLogMessage((error as Error).message, 'error');
      }
      return;
    }
    if (this._full !== full || this._streamSelect.value !== stream || this._task !== task) {
      return; // the user chose another job, task or stream meanwhile
    }
    this._logFinalKey = key;
    if (log.text.length === 0) {
      this._showLogMessage(
        terminal ? `${task} wrote nothing to ${stream}.` : `Nothing on ${stream} yet.`,
        'empty'
      );
      return;
    }
    const lines = log.text.replace(/\n$/, '').split('\n');
    const shown = lines.slice(-LOG_LINES);
    const cut = shown.length < lines.length || log.truncated;
    const pre = this._logText;
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    const text = shown.join('\n');
    if (pre.textContent !== text) {
      pre.textContent = text;
    }
    pre.hidden = false;
    if (atBottom && this._follow.checked) {
      pre.scrollTop = pre.scrollHeight;
    }
    this._logMessage.textContent = cut ? `Last ${shown.length} lines of ${stream}.` : '';
    this._logMessage.hidden = !cut;
    this._logBox.dataset.state = 'text';
  }

  private _showLogMessage(message: string, state: string): void {
    this._logMessage.textContent = message;
    this._logMessage.hidden = false;
    this._logText.textContent = '';
    this._logText.hidden = true;
    this._logBox.dataset.state = state;
  }

  private _resetLog(message: string): void {
    this._logFinalKey = null;
    this._showLogMessage(message, 'loading');
  }

  private _full: string | null = null;
  private _scrollPending = false;
  private _task: string | null = null;
  private _last: IJobDetail | null = null;
  private _shownKeys: { [part: string]: string } = {};
  private _notebookPath: string | undefined;
  private _logFinalKey: string | null = null;
  private _head!: HTMLDivElement;
  private _actions!: HTMLDivElement;
  private _notebook!: HTMLDivElement;
  private _tasks!: HTMLTableElement;
  private _tasksBody!: HTMLTableSectionElement;
  private _ssh!: HTMLDivElement;
  private _logBox!: HTMLDivElement;
  private _logTitle!: HTMLHeadingElement;
  private _streamSelect!: HTMLSelectElement;
  private _follow!: HTMLInputElement;
  private _logMessage!: HTMLDivElement;
  private _logText!: HTMLPreElement;
}
