/**
 * The left-panel widget: who is logged in where, a login form, a small submit form,
 * the jobs list with states and stop buttons, SSH info with copy (each line labelled: the
 * portal's command or pai_magic's key), and the end of the selected job's first task log.
 *
 * It never needs a kernel: every action is one call to the pai_magic server extension.
 * Polling follows the dask-labextension habit: a lumino Poll that backs off on failure
 * and stands by while the panel is hidden (or the browser tab is), refreshed on show.
 */
import { Clipboard } from '@jupyterlab/apputils';
import { Poll } from '@lumino/polling';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { PaiRequestError, postAPI, requestAPI } from './request';
import {
  IJob,
  IJobDetail,
  IJobList,
  ILog,
  ISshCommand,
  ISshInfo,
  IStatus,
  TERMINAL_STATES
} from './types';

export interface ISidebarOptions {
  /** Seconds between refreshes while visible. */
  refreshInterval?: number;
  /** How many of the newest jobs to show. */
  jobLimit?: number;
}

/** Create an element with a class and optional text. */
function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className: string,
  text?: string
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

function labelled(label: string, input: HTMLElement): HTMLLabelElement {
  const wrap = el('label', 'pai-magic-field');
  wrap.appendChild(el('span', 'pai-magic-field-label', label));
  wrap.appendChild(input);
  return wrap;
}

function textInput(name: string, placeholder: string, type = 'text'): HTMLInputElement {
  const input = el('input', 'jp-mod-styled pai-magic-input');
  input.type = type;
  input.name = name;
  input.placeholder = placeholder;
  input.spellcheck = false;
  input.autocomplete = type === 'password' ? 'current-password' : 'off';
  return input;
}

function button(label: string, className = ''): HTMLButtonElement {
  const node = el('button', `jp-Button jp-mod-styled pai-magic-button ${className}`, label);
  node.type = 'button';
  return node;
}

/** A request id per submission, so a double click or a retried POST never submits twice. */
function newRequestId(): string {
  const c: any = (globalThis as any).crypto;
  if (c && typeof c.randomUUID === 'function') {
    return c.randomUUID();
  }
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 12)}`;
}

/** Lines of the log shown; the server is asked for a bit more than that many characters. */
const LOG_LINES = 40;
const LOG_TAIL_CHARS = 16384;

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

function formatTime(ms: number | null): string {
  if (!ms) {
    return '';
  }
  return new Date(ms).toLocaleTimeString();
}

export class PaiSidebar extends Widget {
  constructor(options: ISidebarOptions = {}) {
    super();
    this.id = 'pai-magic-sidebar';
    this.addClass('pai-magic-sidebar');
    this.title.caption = 'OpenPAI jobs';
    this._jobLimit = options.jobLimit ?? 20;
    this._build();
    this._poll = new Poll({
      auto: false,
      factory: () => this._refresh(),
      frequency: {
        interval: (options.refreshInterval ?? 3) * 1000,
        backoff: true,
        max: 60 * 1000
      },
      name: 'pai-magic:sidebar',
      standby: () => !this.isVisible || 'when-hidden'
    });
  }

  /** Apply new settings without recreating the widget. */
  configure(options: ISidebarOptions): void {
    if (options.jobLimit) {
      this._jobLimit = options.jobLimit;
    }
    if (options.refreshInterval) {
      this._poll.frequency = {
        ...this._poll.frequency,
        interval: options.refreshInterval * 1000
      };
    }
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._poll.dispose();
    super.dispose();
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    if (!this._started) {
      this._started = true;
      void this._poll.start();
    }
    void this._poll.refresh();
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    if (this.isVisible && !this._started) {
      this._started = true;
      void this._poll.start();
    }
  }

  // ---- building the DOM ------------------------------------------------------------

  private _build(): void {
    const root = this.node;
    root.appendChild(el('h2', 'pai-magic-title', 'OpenPAI'));

    this._clusterLine = el('div', 'pai-magic-cluster', 'Not logged in');
    this._clusterLine.dataset.testid = 'pai-magic-cluster';
    root.appendChild(this._clusterLine);

    this._errorLine = el('div', 'pai-magic-error');
    this._errorLine.setAttribute('role', 'alert');
    root.appendChild(this._errorLine);

    // Login form: the password is sent once and never kept; only the server keeps the token.
    this._loginForm = el('form', 'pai-magic-login');
    this._urlInput = textInput('url', 'http://10.0.0.1 or http://127.0.0.1:PORT');
    this._userInput = textInput('user', 'user name');
    this._passwordInput = textInput('password', 'password', 'password');
    this._tokenToggle = el('input', 'pai-magic-token-toggle');
    this._tokenToggle.type = 'checkbox';
    this._tokenToggle.name = 'useToken';
    const loginButton = button('Log in', 'jp-mod-accept');
    loginButton.type = 'submit';
    loginButton.name = 'login';
    const localButton = button('Start local backend');
    localButton.name = 'local';
    this._loginForm.appendChild(labelled('Cluster URL', this._urlInput));
    this._loginForm.appendChild(labelled('User', this._userInput));
    this._passwordLabel = labelled('Password', this._passwordInput);
    this._loginForm.appendChild(this._passwordLabel);
    const toggleWrap = el('label', 'pai-magic-checkbox');
    toggleWrap.appendChild(this._tokenToggle);
    toggleWrap.appendChild(document.createTextNode(' paste a token instead (OIDC clusters)'));
    this._loginForm.appendChild(toggleWrap);
    const loginButtons = el('div', 'pai-magic-buttons');
    loginButtons.appendChild(loginButton);
    loginButtons.appendChild(localButton);
    this._loginForm.appendChild(loginButtons);
    this._tokenToggle.addEventListener('change', () => {
      const useToken = this._tokenToggle.checked;
      (this._passwordLabel.firstChild as HTMLElement).textContent = useToken ? 'Token' : 'Password';
      this._passwordInput.placeholder = useToken ? 'token from the web portal' : 'password';
      this._passwordInput.value = '';
    });
    this._loginForm.addEventListener('submit', event => {
      event.preventDefault();
      void this._login();
    });
    localButton.addEventListener('click', () => void this._startLocal());
    root.appendChild(this._loginForm);

    this._switchButton = button('Switch cluster', 'pai-magic-switch');
    this._switchButton.addEventListener('click', () => {
      this._loginForm.hidden = !this._loginForm.hidden;
    });
    root.appendChild(this._switchButton);

    // Submit form: a few shell lines and an image is most of what people run.
    this._submitSection = el('details', 'pai-magic-submit');
    this._submitSection.appendChild(el('summary', '', 'Submit a job'));
    const submitForm = el('form', 'pai-magic-submit-form');
    this._stemInput = textInput('name', 'name stem, e.g. train');
    this._imageInput = textInput('image', 'docker image, e.g. ubuntu:22.04');
    this._imageInput.value = 'ubuntu:22.04';
    this._commandInput = el('textarea', 'jp-mod-styled pai-magic-input pai-magic-commands');
    this._commandInput.name = 'commands';
    this._commandInput.rows = 3;
    this._commandInput.placeholder = 'shell commands, one per line';
    this._gpuInput = textInput('gpu', '0', 'number');
    this._gpuInput.min = '0';
    this._gpuInput.value = '0';
    this._sshToggle = el('input', '');
    this._sshToggle.type = 'checkbox';
    this._sshToggle.name = 'ssh';
    const submitButton = button('Submit', 'jp-mod-accept');
    submitButton.type = 'submit';
    submitButton.name = 'submit';
    this._submitButton = submitButton;
    submitForm.appendChild(labelled('Name', this._stemInput));
    submitForm.appendChild(labelled('Image', this._imageInput));
    submitForm.appendChild(labelled('Commands', this._commandInput));
    submitForm.appendChild(labelled('GPUs', this._gpuInput));
    const sshWrap = el('label', 'pai-magic-checkbox');
    sshWrap.appendChild(this._sshToggle);
    sshWrap.appendChild(document.createTextNode(' SSH into the task (keeps it alive)'));
    submitForm.appendChild(sshWrap);
    submitForm.appendChild(submitButton);
    submitForm.addEventListener('submit', event => {
      event.preventDefault();
      void this._submit();
    });
    this._submitSection.appendChild(submitForm);
    root.appendChild(this._submitSection);

    // Jobs list.
    const jobsHeader = el('div', 'pai-magic-jobs-header');
    jobsHeader.appendChild(el('h3', '', 'Jobs'));
    const refresh = button('Refresh', 'pai-magic-refresh');
    refresh.addEventListener('click', () => void this._poll.refresh());
    jobsHeader.appendChild(refresh);
    root.appendChild(jobsHeader);
    this._jobsTable = el('table', 'pai-magic-jobs');
    root.appendChild(this._jobsTable);

    // Selected job: tasks and SSH info.
    this._detail = el('div', 'pai-magic-detail');
    root.appendChild(this._detail);

    // The end of its first task's log: kept outside the detail box, which is rebuilt on
    // every refresh, so the toggle and the scroll position survive a refresh.
    this._logBox = el('div', 'pai-magic-log');
    this._logBox.hidden = true;
    const logHeader = el('div', 'pai-magic-log-header');
    this._logTitle = el('h4', '', 'Log');
    logHeader.appendChild(this._logTitle);
    this._stderrToggle = el('input', '');
    this._stderrToggle.type = 'checkbox';
    this._stderrToggle.name = 'stderr';
    const stderrWrap = el('label', 'pai-magic-checkbox');
    stderrWrap.appendChild(this._stderrToggle);
    stderrWrap.appendChild(document.createTextNode(' stderr'));
    logHeader.appendChild(stderrWrap);
    this._logBox.appendChild(logHeader);
    this._logMessage = el('div', 'pai-magic-log-message');
    this._logBox.appendChild(this._logMessage);
    this._logText = el('pre', 'pai-magic-log-text');
    this._logBox.appendChild(this._logText);
    this._stderrToggle.addEventListener('change', () => {
      this._logStream = this._stderrToggle.checked ? 'stderr' : 'stdout';
      this._resetLog('Loading...');
      if (this._lastDetail && this._selected) {
        void this._refreshLog(this._selected, this._lastDetail);
      }
    });
    root.appendChild(this._logBox);
    this._showError(null);
  }

  // ---- actions -------------------------------------------------------------------------

  /**
   * The red line. An action's error (a refused login, a rejected submit) stays until the
   * user's next action; the poll only sets and clears its own, so a successful refresh a
   * few seconds later never wipes the message the user needs to read.
   */
  private _showError(message: string | null): void {
    this._actionError = message;
    this._renderError();
  }

  private _showPollError(message: string | null): void {
    this._pollError = message;
    this._renderError();
  }

  private _renderError(): void {
    const message = this._actionError ?? this._pollError;
    this._errorLine.textContent = message ?? '';
    this._errorLine.hidden = !message;
  }

  private async _login(): Promise<void> {
    const secret = this._passwordInput.value;
    const body: { [key: string]: string } = {
      url: this._urlInput.value.trim(),
      user: this._userInput.value.trim()
    };
    body[this._tokenToggle.checked ? 'token' : 'password'] = secret;
    try {
      const status = await postAPI<IStatus>('login', body);
      this._passwordInput.value = '';
      this._showError(null);
      this._renderStatus(status);
      this._loginForm.hidden = true;
      void this._poll.refresh();
    } catch (error) {
      this._passwordInput.value = '';
      this._showError((error as Error).message);
    }
  }

  private async _startLocal(): Promise<void> {
    this._showError(null);
    this._clusterLine.textContent = 'Starting the local backend...';
    try {
      const status = await postAPI<IStatus>('local', {});
      this._renderStatus(status);
      this._loginForm.hidden = true;
      void this._poll.refresh();
    } catch (error) {
      this._showError((error as Error).message);
    }
  }

  private async _submit(): Promise<void> {
    if (this._submitting) {
      return;
    }
    const commands = this._commandInput.value
      .split('\n')
      .map(line => line.trim())
      .filter(line => line.length > 0);
    const spec = {
      name: this._stemInput.value.trim() || 'sidebar',
      image: this._imageInput.value.trim(),
      commands,
      gpu: Number(this._gpuInput.value || '0'),
      ssh: this._sshToggle.checked,
      keepAlive: this._sshToggle.checked
    };
    this._submitting = true;
    this._submitButton.disabled = true;
    try {
      const answer = await postAPI<{ name: string }>('jobs', {
        spec,
        requestId: newRequestId()
      });
      this._showError(null);
      this._selected = answer.name;
      this._commandInput.value = '';
      void this._poll.refresh();
    } catch (error) {
      this._showError((error as Error).message);
    } finally {
      this._submitting = false;
      this._submitButton.disabled = false;
    }
  }

  private async _stop(name: string, node: HTMLButtonElement): Promise<void> {
    node.disabled = true;
    try {
      await postAPI(`jobs/${encodeURIComponent(name)}/stop`, {});
      this._showError(null);
      void this._poll.refresh();
    } catch (error) {
      node.disabled = false;
      this._showError((error as Error).message);
    }
  }

  // ---- polling -------------------------------------------------------------------------

  private async _refresh(): Promise<void> {
    const status = await requestAPI<IStatus>('status').catch(error => {
      this._showPollError((error as Error).message);
      throw error;
    });
    this._renderStatus(status);
    if (!status.loggedIn) {
      this._showPollError(null);
      this._renderJobs([]);
      return;
    }
    try {
      const list = await requestAPI<IJobList>(`jobs?limit=${this._jobLimit}`);
      this._renderJobs(list.jobs);
      this._showPollError(null);
    } catch (error) {
      this._showPollError((error as Error).message);
      if (error instanceof PaiRequestError && error.status === 401) {
        this._loginForm.hidden = false; // the token expired or was revoked
      }
      throw error; // the poll backs off
    }
    if (this._selected) {
      // a failing detail must not stop the list from refreshing
      await this._refreshDetail(this._selected).catch(error =>
        this._showPollError((error as Error).message)
      );
    }
  }

  private async _refreshDetail(name: string): Promise<void> {
    const detail = await requestAPI<IJobDetail>(`jobs/${encodeURIComponent(name)}`);
    let ssh: ISshInfo | null = null;
    if (detail.state === 'RUNNING') {
      ssh = await requestAPI<ISshInfo>(`jobs/${encodeURIComponent(name)}/ssh`);
    }
    if (this._selected === name) {
      this._lastDetail = detail;
      this._renderDetail(detail, ssh);
      await this._refreshLog(name, detail);
    }
  }

  /**
   * Read the end of the first task's log. Called by each poll tick while the detail is open
   * (so never while the sidebar is hidden); once the job is finished its log cannot change,
   * so it is read one last time and then left alone.
   */
  private async _refreshLog(name: string, detail: IJobDetail): Promise<void> {
    const stream = this._logStream;
    const first = detail.tasks[0];
    this._logBox.hidden = false;
    if (!first) {
      this._logTitle.textContent = 'Log';
      this._showLogMessage('No log yet: the job has no task yet.', 'none');
      return;
    }
    const task = `${first.role}/${first.index}`;
    const key = `${name}|${task}|${stream}`;
    const terminal = TERMINAL_STATES.has(detail.state);
    if (terminal && this._logFinalKey === key) {
      return;
    }
    this._logTitle.textContent = `Log of ${task}`;
    this._logBox.dataset.task = task;
    this._logBox.dataset.stream = stream;
    const query = `task=${encodeURIComponent(task)}&stream=${stream}&tail=${LOG_TAIL_CHARS}`;
    let log: ILog;
    try {
      log = await requestAPI<ILog>(`jobs/${encodeURIComponent(name)}/logs?${query}`);
    } catch (error) {
      if (this._selected !== name || this._logStream !== stream) {
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
    if (this._selected !== name || this._logStream !== stream) {
      return; // the user chose another job or stream meanwhile
    }
    if (terminal) {
      this._logFinalKey = key;
    }
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
    pre.textContent = shown.join('\n');
    pre.hidden = false;
    if (atBottom) {
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

  // ---- rendering -------------------------------------------------------------------------

  private _renderStatus(status: IStatus): void {
    if (status.loggedIn) {
      const profile = status.profile ? ` (profile ${status.profile})` : '';
      this._clusterLine.textContent = `${status.user} @ ${status.url}${profile}`;
      this._clusterLine.dataset.loggedIn = 'true';
      if (!this._everLoggedIn) {
        this._everLoggedIn = true;
        this._loginForm.hidden = true;
      }
      if (status.url && !this._urlInput.value) {
        this._urlInput.value = status.url;
      }
      if (status.user && !this._userInput.value) {
        this._userInput.value = status.user;
      }
    } else {
      this._clusterLine.textContent = status.message || 'Not logged in';
      this._clusterLine.dataset.loggedIn = 'false';
      this._loginForm.hidden = false;
    }
    this._switchButton.hidden = !status.loggedIn;
    this._submitSection.hidden = !status.loggedIn;
  }

  private _renderJobs(jobs: IJob[]): void {
    const table = this._jobsTable;
    table.textContent = '';
    if (jobs.length === 0) {
      const row = table.insertRow();
      const cell = row.insertCell();
      cell.colSpan = 3;
      cell.className = 'pai-magic-empty';
      cell.textContent = 'No jobs yet.';
      return;
    }
    for (const job of jobs) {
      const row = table.insertRow();
      row.className = 'pai-magic-job';
      row.dataset.jobName = job.name;
      row.dataset.state = job.state;
      if (job.name === this._selected) {
        row.classList.add('pai-magic-selected');
      }
      const nameCell = row.insertCell();
      nameCell.className = 'pai-magic-job-name';
      nameCell.textContent = job.name;
      nameCell.title = `${job.user}~${job.name}, submitted ${formatTime(job.submissionTime)}`;
      const stateCell = row.insertCell();
      const badge = el('span', `pai-magic-state pai-magic-state-${job.state}`, job.state);
      if (job.exitCode !== null && TERMINAL_STATES.has(job.state)) {
        badge.title = `exit code ${job.exitCode}`;
      }
      stateCell.appendChild(badge);
      const actionCell = row.insertCell();
      if (!TERMINAL_STATES.has(job.state)) {
        const stop = button('Stop', 'pai-magic-stop jp-mod-warn');
        stop.title = `Stop ${job.name}`;
        stop.addEventListener('click', event => {
          event.stopPropagation();
          void this._stop(job.name, stop);
        });
        actionCell.appendChild(stop);
      }
      row.addEventListener('click', () => {
        if (this._selected !== job.name) {
          this._lastDetail = null;
          this._resetLog('Loading...');
        }
        this._selected = job.name;
        for (const other of Array.from(table.querySelectorAll('.pai-magic-selected'))) {
          other.classList.remove('pai-magic-selected');
        }
        row.classList.add('pai-magic-selected');
        this._refreshDetail(job.name).catch(error => this._showError((error as Error).message));
      });
    }
  }

  private _renderDetail(detail: IJobDetail, ssh: ISshInfo | null): void {
    const box = this._detail;
    box.textContent = '';
    box.dataset.jobName = detail.name;
    box.appendChild(el('h3', '', detail.name));
    const summary = `${detail.state}` +
      (detail.exitCode !== null ? `, exit code ${detail.exitCode}` : '');
    box.appendChild(el('div', 'pai-magic-detail-state', summary));
    if (detail.diagnostics) {
      box.appendChild(el('div', 'pai-magic-diagnostics', detail.diagnostics));
    }
    const tasks = el('ul', 'pai-magic-tasks');
    for (const task of detail.tasks) {
      tasks.appendChild(el('li', '', `${task.role}/${task.index}: ${task.state}`));
    }
    box.appendChild(tasks);
    if (ssh) {
      const sshBox = el('div', 'pai-magic-ssh');
      sshBox.appendChild(el('h4', '', 'SSH'));
      if (ssh.message) {
        sshBox.appendChild(el('div', 'pai-magic-ssh-message', ssh.message));
      }
      for (const command of sshCommands(ssh)) {
        const line = command.line;
        sshBox.appendChild(el('div', 'pai-magic-ssh-label', sshLabel(command)));
        const row = el('div', 'pai-magic-ssh-line');
        row.dataset.kind = command.kind;
        row.appendChild(el('code', '', line));
        const copy = button('Copy', 'pai-magic-copy');
        copy.title = 'Copy to the clipboard';
        copy.addEventListener('click', () => {
          Clipboard.copyToSystem(line);
          copy.textContent = 'Copied';
          window.setTimeout(() => (copy.textContent = 'Copy'), 1500);
        });
        row.appendChild(copy);
        sshBox.appendChild(row);
      }
      box.appendChild(sshBox);
    }
  }

  private _poll: Poll;
  private _started = false;
  private _everLoggedIn = false;
  private _submitting = false;
  private _actionError: string | null = null;
  private _pollError: string | null = null;
  private _selected: string | null = null;
  private _jobLimit: number;
  private _clusterLine!: HTMLDivElement;
  private _errorLine!: HTMLDivElement;
  private _loginForm!: HTMLFormElement;
  private _urlInput!: HTMLInputElement;
  private _userInput!: HTMLInputElement;
  private _passwordInput!: HTMLInputElement;
  private _passwordLabel!: HTMLLabelElement;
  private _tokenToggle!: HTMLInputElement;
  private _switchButton!: HTMLButtonElement;
  private _submitSection!: HTMLDetailsElement;
  private _stemInput!: HTMLInputElement;
  private _imageInput!: HTMLInputElement;
  private _commandInput!: HTMLTextAreaElement;
  private _gpuInput!: HTMLInputElement;
  private _sshToggle!: HTMLInputElement;
  private _submitButton!: HTMLButtonElement;
  private _jobsTable!: HTMLTableElement;
  private _detail!: HTMLDivElement;
  private _lastDetail: IJobDetail | null = null;
  private _logStream: 'stdout' | 'stderr' = 'stdout';
  /** The job|task|stream whose final log is shown (a finished job's log is read once). */
  private _logFinalKey: string | null = null;
  private _logBox!: HTMLDivElement;
  private _logTitle!: HTMLHeadingElement;
  private _stderrToggle!: HTMLInputElement;
  private _logMessage!: HTMLDivElement;
  private _logText!: HTMLPreElement;
}
