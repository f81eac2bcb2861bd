/**
 * The left-panel widget: who is logged in where (switch cluster, log out), a login form,
 * and four tabs: Jobs (search, filters, pages, the chosen job's detail, tasks and logs),
 * Submit (the form, YAML import/export, clone), Images (the registry) and Storage.
 *
 * It never needs a kernel: every action is one call to the pai_magic server extension.
 * Polling follows the dask-labextension habit: a lumino Poll that backs off on failure
 * and stands by while the panel is hidden (or the browser tab is), refreshed on show.
 * A tick asks for one thing: the status while logged out, else the shown page of jobs
 * (and the chosen job while its detail is open).
 */
import { Poll } from '@lumino/polling';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { PaiRequestError, postAPI, requestAPI } from './request';
import { IJob, IJobConfig, IProfiles, IStatus } from './types';
import { button, el, labelled, textInput } from './dom';
import { JobDetailView } from './detail';
import { fullName, JobsView } from './jobs';
import { SubmitForm } from './submit';
import { ImagesView } from './images';
import { StorageView } from './storage';

export { sshCommands, sshLabel } from './detail';

export interface ISidebarOptions {
  /** Seconds between refreshes while visible. */
  refreshInterval?: number;
  /** Jobs per page. */
  jobLimit?: number;
  /** Open a JupyterLab terminal running this command line. */
  openTerminal?: (command: string) => Promise<void>;
  /** Open a file (relative to the Jupyter root) in JupyterLab. */
  openFile?: (path: string) => void;
}

type Tab = 'jobs' | 'submit' | 'images' | 'storage';
const TABS: [Tab, string][] = [
  ['jobs', 'Jobs'],
  ['submit', 'Submit'],
  ['images', 'Images'],
  ['storage', 'Storage']
];

export class PaiSidebar extends Widget {
  constructor(options: ISidebarOptions = {}) {
    super();
    this.id = 'pai-magic-sidebar';
    this.addClass('pai-magic-sidebar');
    this.title.caption = 'OpenPAI jobs';
    this._options = options;
    this._build(options.jobLimit ?? 20);
    this._poll = new Poll({
      auto: false,
      factory: () => this._tick(),
      frequency: {
        interval: Math.max(options.refreshInterval ?? 5, 1) * 1000,
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
      this._jobs.pageSize = options.jobLimit;
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

  // ---- building the DOM ------------------------------------------------------------------

  private _build(pageSize: number): void {
    const root = this.node;
    const header = el('div', 'pai-magic-header');
    header.appendChild(el('h2', 'pai-magic-title', 'OpenPAI'));
    this._profileSelect = el('select', 'jp-mod-styled pai-magic-select pai-magic-profiles');
    this._profileSelect.name = 'profile';
    this._profileSelect.setAttribute('aria-label', 'Switch cluster (profile)');
    this._profileSelect.title = 'Switch cluster: the saved profiles';
    this._profileSelect.addEventListener('change', () => {
      this._showChosenProfile();
      void this._switchProfile();
    });
    // a profile saved meanwhile (CLI login, another tab) shows up when the list is opened
    this._profileSelect.addEventListener('focus', () => void this._refreshProfiles());
    this._logoutButton = button('Log out', 'pai-magic-logout');
    this._logoutButton.name = 'logout';
    this._logoutButton.addEventListener('click', () => void this._logout());
    header.appendChild(this._logoutButton);
    root.appendChild(header);

    // A closed <select> shows its option's text cut at its right edge, so a long profile name
    // hid its "(logged out)". The select stays the control (keyboard, screen readers, the
    // native list with each profile's state), drawn transparent over a face that cuts the
    // name with an ellipsis and always shows the state.
    this._profileRow = el('label', 'pai-magic-profile-row');
    this._profileRow.appendChild(el('span', 'pai-magic-field-label', 'Cluster'));
    this._profilePicker = el('span', 'pai-magic-profile-picker');
    const face = el('span', 'pai-magic-profile-face');
    face.setAttribute('aria-hidden', 'true');
    this._profileName = el('span', 'pai-magic-profile-name');
    this._profileState = el('span', 'pai-magic-profile-state', '(logged out)');
    face.append(this._profileName, this._profileState);
    this._profilePicker.append(face, this._profileSelect);
    this._profileRow.appendChild(this._profilePicker);
    root.appendChild(this._profileRow);

    this._clusterLine = el('div', 'pai-magic-cluster', 'Not logged in');
    this._clusterLine.dataset.testid = 'pai-magic-cluster';
    root.appendChild(this._clusterLine);

    this._errorLine = el('div', 'pai-magic-error');
    this._errorLine.setAttribute('role', 'alert');
    root.appendChild(this._errorLine);

    this._buildLogin(root);

    this._switchButton = button('Log in elsewhere', 'pai-magic-switch');
    this._switchButton.name = 'switch';
    this._switchButton.addEventListener('click', () => {
      this._loginForm.hidden = !this._loginForm.hidden;
    });
    root.appendChild(this._switchButton);

    // tabs: a tablist of buttons (arrow keys move between them), one panel each
    this._tabBar = el('div', 'pai-magic-tabs');
    this._tabBar.setAttribute('role', 'tablist');
    this._main = el('div', 'pai-magic-main');
    this._jobs = new JobsView({
      pageSize,
      select: job => this._select(job),
      stop: (job, node) => void this._stop(fullName(job), node),
      changed: () => this._refreshNow()
    });
    this._detail = new JobDetailView({
      stop: (full, node) => void this._stop(full, node),
      clone: full => void this._clone(full),
      openTerminal: this._options.openTerminal,
      openFile: this._options.openFile,
      error: message => this._showError(message)
    });
    this._submit = new SubmitForm({
      submitted: name => {
        this._pendingSelect = name;
        this._showTab('jobs');
        this._refreshNow();
      }
    });
    this._images = new ImagesView(reference => {
      this._submit.setImage(reference);
      this._showTab('submit');
    });
    this._storage = new StorageView(name => {
      const spec = this._submit.spec();
      const storages = new Set(spec.storages ?? []);
      storages.add(name);
      this._submit.fill({ ...spec, storages: Array.from(storages) });
      this._showTab('submit');
    });
    const panels: { [tab: string]: HTMLElement } = {
      jobs: el('div', ''),
      submit: this._submit.node,
      images: this._images.node,
      storage: this._storage.node
    };
    panels.jobs.appendChild(this._jobs.node);
    panels.jobs.appendChild(this._detail.node);
    for (const [tab, label] of TABS) {
      const node = button(label, 'pai-magic-tab');
      node.setAttribute('role', 'tab');
      node.id = `pai-magic-tab-${tab}`;
      node.dataset.tab = tab;
      node.addEventListener('click', () => this._showTab(tab));
      node.addEventListener('keydown', event => this._tabKey(event, tab));
      this._tabBar.appendChild(node);
      this._tabButtons[tab] = node;
      const panel = panels[tab];
      panel.classList.add('pai-magic-panel');
      panel.setAttribute('role', 'tabpanel');
      panel.setAttribute('aria-labelledby', node.id);
      panel.dataset.panel = tab;
      this._panels[tab] = panel;
      this._main.appendChild(panel);
    }
    root.appendChild(this._tabBar);
    root.appendChild(this._main);
    this._showTab('jobs');
    this._showError(null);
    this._renderStatus(null);
  }

  private _buildLogin(root: HTMLElement): void {
    // the password is sent once and never kept; only the server keeps the token
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
    this._loginForm.appendChild(labelled('Cluster URL', this._urlInput, 'url'));
    this._loginForm.appendChild(labelled('User', this._userInput, 'user'));
    this._passwordLabel = labelled('Password', this._passwordInput, 'password');
    this._loginForm.appendChild(this._passwordLabel);
    const toggleWrap = el('label', 'pai-magic-checkbox');
    toggleWrap.appendChild(this._tokenToggle);
    toggleWrap.appendChild(document.createTextNode(' paste a token instead (OIDC clusters)'));
    this._loginForm.appendChild(toggleWrap);
    this._loginError = el('div', 'pai-magic-form-error');
    this._loginError.setAttribute('role', 'alert');
    this._loginError.hidden = true;
    this._loginForm.appendChild(this._loginError);
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
  }

  private _showTab(tab: Tab): void {
    this._tab = tab;
    for (const [name] of TABS) {
      const selected = name === tab;
      this._tabButtons[name].setAttribute('aria-selected', String(selected));
      this._tabButtons[name].tabIndex = selected ? 0 : -1;
      this._tabButtons[name].classList.toggle('pai-magic-tab-current', selected);
      this._panels[name].hidden = !selected;
    }
    if (tab === 'images' && !this._images.loaded && this._loggedIn) {
      void this._images.refresh();
    }
    if (tab === 'storage' && !this._storage.loaded && this._loggedIn) {
      void this._storage.refresh();
    }
    if (tab === 'jobs' && this._started) {
      this._refreshNow();
    }
  }

  private _tabKey(event: KeyboardEvent, tab: Tab): void {
    const names = TABS.map(([name]) => name);
    const at = names.indexOf(tab);
    let next: Tab | null = null;
    if (event.key === 'ArrowRight') {
      next = names[(at + 1) % names.length];
    } else if (event.key === 'ArrowLeft') {
      next = names[(at + names.length - 1) % names.length];
    }
    if (next) {
      event.preventDefault();
      this._showTab(next);
      this._tabButtons[next].focus();
    }
  }

  // ---- errors --------------------------------------------------------------------------------

  /**
   * The red line under the cluster line: a failed refresh or action. It is stale once
   * anything succeeds again, so the next successful refresh or action clears it. Form
   * errors are not here: they stay under their field until the form is used again.
   */
  private _showError(message: string | null): void {
    this._errorLine.textContent = message ?? '';
    this._errorLine.hidden = !message;
  }

  // ---- actions -------------------------------------------------------------------------------

  private async _login(): Promise<void> {
    const secret = this._passwordInput.value;
    const body: { [key: string]: string } = {
      url: this._urlInput.value.trim(),
      user: this._userInput.value.trim()
    };
    body[this._tokenToggle.checked ? 'token' : 'password'] = secret;
    this._loginError.hidden = true;
    try {
      const status = await postAPI<IStatus>('login', body);
      this._passwordInput.value = '';
      this._showError(null);
      this._afterStatusChange(status);
    } catch (error) {
      this._passwordInput.value = '';
      this._loginError.textContent = (error as Error).message;
      this._loginError.hidden = false;
      // the secret was cleared: the caret goes where it is typed again
      this._passwordInput.focus();
    }
  }

  private async _startLocal(): Promise<void> {
    this._loginError.hidden = true;
    this._clusterLine.textContent = 'Starting the local backend...';
    try {
      this._afterStatusChange(await postAPI<IStatus>('local', {}));
    } catch (error) {
      this._loginError.textContent = (error as Error).message;
      this._loginError.hidden = false;
    }
  }

  private async _logout(): Promise<void> {
    try {
      const status = await postAPI<IStatus>('logout', {});
      this._showError(null);
      this._detail.hide();
      this._jobs.clear();
      this._afterStatusChange(status);
      // the Log out button just hid itself, which drops the focus to the page: it goes to
      // the form that is shown instead, where the next login is typed
      (this._urlInput.value ? this._passwordInput : this._urlInput).focus();
    } catch (error) {
      this._showError((error as Error).message);
    }
  }

  private async _switchProfile(): Promise<void> {
    const name = this._profileSelect.value;
    if (!name || name === this._status?.profile) {
      return;
    }
    try {
      const status = await postAPI<IStatus>('profiles', { profile: name });
      this._showError(null);
      this._detail.hide();
      this._afterStatusChange(status);
    } catch (error) {
      this._showError((error as Error).message);
    }
  }

  private _afterStatusChange(status: IStatus): void {
    this._renderStatus(status);
    void this._refreshProfiles();
    if (status.loggedIn) {
      this._loginForm.hidden = true;
    }
    this._refreshNow();
  }

  private async _stop(full: string, node: HTMLButtonElement): Promise<void> {
    node.disabled = true;
    try {
      await postAPI(`jobs/${encodeURIComponent(full)}/stop`, {});
      this._showError(null);
      this._refreshNow();
    } catch (error) {
      node.disabled = false;
      this._showError((error as Error).message);
    }
  }

  private async _clone(full: string): Promise<void> {
    try {
      const config = await requestAPI<IJobConfig>(`jobs/${encodeURIComponent(full)}/config`);
      this._showError(null);
      if (config.spec) {
        this._submit.fill(config.spec);
        this._submit.showYaml(config.yaml, `Cloned from ${config.name}: change what you need, then Submit.`);
      } else {
        this._submit.showYaml(config.yaml, config.specMessage);
      }
      this._showTab('submit');
      this._submit.node.scrollIntoView({ block: 'start' });
    } catch (error) {
      this._showError((error as Error).message);
    }
  }

  private _select(job: IJob): void {
    this._detail.show(fullName(job)).catch(error => this._showError((error as Error).message));
  }

  // ---- polling -------------------------------------------------------------------------------

  /**
   * A refresh the user asked for (a filter, a page, a submit): run at once, outside the
   * poll (lumino drops a refresh asked while one is running); a late answer of an older
   * request never overwrites a newer one (JobsView keeps a sequence number).
   */
  private _refreshNow(): void {
    this._tick().catch(() => undefined);
  }

  private async _tick(): Promise<void> {
    try {
      if (!this._loggedIn) {
        const status = await requestAPI<IStatus>('status');
        this._renderStatus(status);
        if (!this._profilesLoaded) {
          await this._refreshProfiles();
        }
        if (!status.loggedIn) {
          this._showError(null);
          return;
        }
      }
      if (this._tab === 'jobs') {
        await this._jobs.refresh();
        if (this._pendingSelect) {
          const row = this._jobs.node.querySelector<HTMLElement>(
            `tr.pai-magic-job[data-job-name="${CSS.escape(this._pendingSelect)}"]`
          );
          if (row) {
            this._pendingSelect = null;
            row.click();
          }
        }
        if (this._detail.needsPolling) {
          await this._detail.refresh();
        }
      }
      this._showError(null);
    } catch (error) {
      if (error instanceof PaiRequestError && error.status === 401) {
        // the token expired or was revoked (or a logout elsewhere): ask again
        this._loggedIn = false;
        this._loginForm.hidden = false;
      }
      this._showError((error as Error).message);
      throw error; // the poll backs off
    }
  }

  private async _refreshProfiles(): Promise<void> {
    try {
      const data = await requestAPI<IProfiles>('profiles');
      this._profilesLoaded = true;
      const select = this._profileSelect;
      select.textContent = '';
      for (const profile of data.profiles) {
        const option = el('option', '', `${profile.name}${profile.loggedIn ? '' : ' (logged out)'}`);
        option.value = profile.name;
        option.title = `${profile.user ?? ''} @ ${profile.url}`;
        option.dataset.loggedIn = String(profile.loggedIn);
        select.appendChild(option);
      }
      const active = this._status?.profile ?? data.active;
      if (active) {
        select.value = active;
      }
      this._showChosenProfile();
      this._profileRow.hidden = data.profiles.length === 0;
    } catch {
      // profiles are a convenience: the status line still says where we are
    }
  }

  // ---- rendering -----------------------------------------------------------------------------

  /** The picker's face: the chosen profile's name (cut when long) and its state (never cut). */
  private _showChosenProfile(): void {
    const option = this._profileSelect.selectedOptions[0];
    const name = option?.value ?? '';
    const loggedIn = option?.dataset.loggedIn !== 'false';
    this._profileName.textContent = name;
    this._profileState.hidden = loggedIn;
    this._profilePicker.dataset.loggedIn = String(loggedIn);
    this._profileSelect.title = option
      ? `${name}${loggedIn ? '' : ' (logged out)'}: ${option.title}. Switch cluster: the saved profiles`
      : 'Switch cluster: the saved profiles';
  }

  private _renderStatus(status: IStatus | null): void {
    this._status = status;
    const loggedIn = !!status?.loggedIn;
    this._loggedIn = loggedIn;
    if (status && loggedIn) {
      const profile = status.profile ? ` (profile ${status.profile})` : '';
      this._clusterLine.textContent = `${status.user} @ ${status.url}${profile}`;
      this._clusterLine.title = this._clusterLine.textContent;
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
      if (status.profile && this._profileSelect.value !== status.profile) {
        this._profileSelect.value = status.profile;
        this._showChosenProfile();
      }
    } else {
      this._clusterLine.textContent = status?.message || 'Not logged in';
      this._clusterLine.dataset.loggedIn = status ? 'false' : 'unknown';
      this._loginForm.hidden = false;
      if (status?.url && !this._urlInput.value) {
        this._urlInput.value = status.url;
      }
      if (status?.user && !this._userInput.value) {
        this._userInput.value = status.user;
      }
    }
    this._switchButton.hidden = !loggedIn;
    this._logoutButton.hidden = !loggedIn;
    this._tabBar.hidden = !loggedIn;
    this._main.hidden = !loggedIn;
  }

  private _options: ISidebarOptions;
  private _poll: Poll;
  private _started = false;
  private _everLoggedIn = false;
  private _loggedIn = false;
  private _profilesLoaded = false;
  private _status: IStatus | null = null;
  private _tab: Tab = 'jobs';
  private _pendingSelect: string | null = null;
  private _tabButtons: { [tab: string]: HTMLButtonElement } = {};
  private _panels: { [tab: string]: HTMLElement } = {};
  private _jobs!: JobsView;
  private _detail!: JobDetailView;
  private _submit!: SubmitForm;
  private _images!: ImagesView;
  private _storage!: StorageView;
  private _tabBar!: HTMLDivElement;
  private _main!: HTMLDivElement;
  private _clusterLine!: HTMLDivElement;
  private _errorLine!: HTMLDivElement;
  private _profileSelect!: HTMLSelectElement;
  private _profileRow!: HTMLLabelElement;
  private _profilePicker!: HTMLSpanElement;
  private _profileName!: HTMLSpanElement;
  private _profileState!: HTMLSpanElement;
  private _logoutButton!: HTMLButtonElement;
  private _loginForm!: HTMLFormElement;
  private _loginError!: HTMLDivElement;
  private _urlInput!: HTMLInputElement;
  private _userInput!: HTMLInputElement;
  private _passwordInput!: HTMLInputElement;
  private _passwordLabel!: HTMLLabelElement;
  private _tokenToggle!: HTMLInputElement;
  private _switchButton!: HTMLButtonElement;
}
