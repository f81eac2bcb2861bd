/**
 * The job list as the portal shows it: search by name, filter by state, user and virtual
 * cluster, pages with the total ("21-40 of 345"), state in words and colour, kernel and
 * notebook-run jobs labelled, a Stop button per unfinished job. Rows are keyboard
 * reachable (Tab, Enter); focus and selection survive a refresh.
 */
import { requestAPI } from './request';
import { IJob, IJobList, JOB_STATES, TERMINAL_STATES } from './types';
import {
  activatable,
  button,
  el,
  ellipsized,
  formatTime,
  selectInput,
  stateBadge,
  textInput
} from './dom';

/** The name every request uses for a job: USER~NAME works for anyone's job. */
export function fullName(job: { user: string; name: string }): string {
  return `${job.user}~${job.name}`;
}

export interface IJobsViewOptions {
  pageSize: number;
  /** A row was chosen (click or Enter). */
  select: (job: IJob) => void;
  stop: (job: IJob, node: HTMLButtonElement) => void;
  /** The filters changed: refresh now. */
  changed: () => void;
}

export class JobsView {
  readonly node: HTMLElement;

  constructor(private _options: IJobsViewOptions) {
    this.node = el('div', 'pai-magic-jobs-view');
    this._build();
  }

  set pageSize(value: number) {
    this._options.pageSize = value;
  }

  /** The job whose row is highlighted (USER~NAME). */
  set selected(value: string | null) {
    this._selected = value;
    for (const row of Array.from(this._body.rows)) {
      row.classList.toggle('pai-magic-selected', row.dataset.fullName === value);
      row.setAttribute('aria-selected', String(row.dataset.fullName === value));
    }
  }

  /** One GET of the current page; throws (so the poll backs off) on failure. */
  async refresh(): Promise<void> {
    const params = new URLSearchParams();
    params.set('limit', String(this._options.pageSize));
    params.set('offset', String(this._offset));
    const f = this._applied;
    if (f.keyword) {
      params.set('keyword', f.keyword);
    }
    if (f.state) {
      params.set('state', f.state);
    }
    if (f.scope === 'all') {
      params.set('user', '*');
    }
    if (f.vc) {
      params.set('vc', f.vc);
    }
    const seq = ++this._seq;
    const list = await requestAPI<IJobList>(`jobs?${params.toString()}`);
    if (seq !== this._seq) {
      return; // a newer request (another page or filter) was sent meanwhile
    }
    if (list.total !== null && list.total > 0 && this._offset >= list.total) {
      // the filter shrank the list under the page we were on: go to its last page
      this._offset = Math.max(0, Math.floor((list.total - 1) / this._options.pageSize) * this._options.pageSize);
      return this.refresh();
    }
    this._render(list);
  }

  clear(): void {
    this._body.textContent = '';
    this._pageLabel.textContent = '';
  }

  /**
   * Take the filter fields' values: a tick reads these, never the fields themselves, so a
   * poll between a keystroke and the (debounced) search cannot show a page of one filter
   * with the paging of another.
   */
  private _applyFilters(): void {
    this._applied = {
      keyword: this._keyword.value.trim(),
      state: this._state.value,
      scope: this._scope.value,
      vc: this._vc.value.trim()
    };
  }

  // ---- building ----------------------------------------------------------------------------

  private _build(): void {
    const filters = el('form', 'pai-magic-filters');
    filters.setAttribute('role', 'search');
    this._keyword = textInput('keyword', 'search job names');
    this._keyword.type = 'search';
    this._keyword.setAttribute('aria-label', 'Search job names');
    this._state = selectInput('state', [['', 'All states'], ...JOB_STATES.map(s => [s, s] as [string, string])]);
    this._state.setAttribute('aria-label', 'Filter by state');
    this._scope = selectInput('scope', [
      ['mine', 'My jobs'],
      ['all', 'All users']
    ]);
    this._scope.setAttribute('aria-label', 'Whose jobs');
    this._vc = textInput('vc', 'VC');
    this._vc.setAttribute('aria-label', 'Filter by virtual cluster');
    filters.appendChild(this._keyword);
    const row = el('div', 'pai-magic-filter-row');
    row.appendChild(this._state);
    row.appendChild(this._scope);
    row.appendChild(this._vc);
    const refresh = button('Refresh', 'pai-magic-refresh');
    refresh.name = 'refresh';
    refresh.title = 'Read the jobs again now';
    refresh.addEventListener('click', () => this._options.changed());
    row.appendChild(refresh);
    filters.appendChild(row);
    const restart = () => {
      this._offset = 0;
      this._applyFilters();
      this._options.changed();
    };
    filters.addEventListener('submit', event => {
      event.preventDefault();
      restart();
    });
    this._keyword.addEventListener('input', () => {
      window.clearTimeout(this._typing);
      this._typing = window.setTimeout(() => {
        this._typing = 0;
        restart();
      }, 350);
    });
    // a page asked for while a search is still being typed: the search wins (page 1)
    const typed = () => {
      if (!this._typing) {
        return false;
      }
      window.clearTimeout(this._typing);
      this._typing = 0;
      restart();
      return true;
    };
    for (const node of [this._state, this._scope]) {
      node.addEventListener('change', restart);
    }
    this._vc.addEventListener('change', restart);
    this.node.appendChild(filters);

    this._table = el('table', 'pai-magic-table pai-magic-jobs');
    this._table.setAttribute('aria-label', 'Jobs');
    this._body = this._table.createTBody();
    this.node.appendChild(this._table);

    const pager = el('div', 'pai-magic-pager');
    this._prev = button('\u2039 Newer', 'pai-magic-prev');
    this._prev.name = 'prev';
    this._prev.title = 'Newer jobs';
    this._next = button('Older \u203a', 'pai-magic-next');
    this._next.name = 'next';
    this._next.title = 'Older jobs';
    this._pageLabel = el('span', 'pai-magic-page-label');
    this._pageLabel.setAttribute('aria-live', 'polite');
    this._prev.addEventListener('click', () => {
      if (typed()) {
        return;
      }
      this._offset = Math.max(0, this._offset - this._options.pageSize);
      this._options.changed();
    });
    this._next.addEventListener('click', () => {
      if (typed()) {
        return;
      }
      this._offset += this._options.pageSize;
      this._options.changed();
    });
    pager.appendChild(this._prev);
    pager.appendChild(this._pageLabel);
    pager.appendChild(this._next);
    this.node.appendChild(pager);
  }

  // ---- rendering ---------------------------------------------------------------------------

  private _render(list: IJobList): void {
    const focused = (document.activeElement as HTMLElement | null)?.closest?.('tr.pai-magic-job') as
      | HTMLTableRowElement
      | null;
    const focusedName = focused && this._body.contains(focused) ? focused.dataset.fullName : null;
    const body = this._body;
    body.textContent = '';
    const jobs = list.jobs;
    const total = list.total ?? jobs.length;
    if (jobs.length === 0) {
      const row = body.insertRow();
      const cell = row.insertCell();
      cell.colSpan = 4;
      cell.className = 'pai-magic-empty';
      cell.textContent = this._filtered() ? 'No job matches these filters.' : 'No jobs yet.';
    }
    for (const job of jobs) {
      body.appendChild(this._row(job));
    }
    const first = jobs.length ? this._offset + 1 : 0;
    const last = this._offset + jobs.length;
    this._pageLabel.textContent = jobs.length
      ? `${first}\u2013${last} of ${total}`
      : `0 of ${total}`;
    this._pageLabel.dataset.total = String(total);
    // the filters this page was read with (tests wait on them; nothing else reads them)
    this._table.dataset.keyword = this._applied.keyword;
    this._table.dataset.stateFilter = this._applied.state;
    this._prev.disabled = this._offset === 0;
    this._next.disabled = last >= total;
    if (focusedName) {
      body.querySelector<HTMLElement>(`tr[data-full-name="${CSS.escape(focusedName)}"]`)?.focus();
    }
  }

  private _filtered(): boolean {
    const f = this._applied;
    return !!(f.keyword || f.state || f.vc || f.scope === 'all');
  }

  private _row(job: IJob): HTMLTableRowElement {
    const row = el('tr', 'pai-magic-job');
    const full = fullName(job);
    row.dataset.jobName = job.name;
    row.dataset.fullName = full;
    row.dataset.state = job.state;
    if (job.kind) {
      row.dataset.kind = job.kind;
    }
    if (full === this._selected) {
      row.classList.add('pai-magic-selected');
    }
    const nameCell = row.insertCell();
    nameCell.className = 'pai-magic-name-cell';
    const who = this._applied.scope === 'all' ? `${job.user}~` : '';
    nameCell.appendChild(
      ellipsized(
        'pai-magic-job-name',
        `${who}${job.shortName || job.name}`,
        `${full}\nsubmitted ${formatTime(job.submissionTime)}${job.virtualCluster ? `\nVC ${job.virtualCluster}` : ''}`
      )
    );
    if (job.kindLabel) {
      nameCell.appendChild(el('span', `pai-magic-kind pai-magic-kind-${job.kind}`, job.kindLabel));
    }
    const stateCell = row.insertCell();
    stateCell.className = 'pai-magic-state-cell';
    const badge = stateBadge(job.state);
    if (job.exitCode !== null && TERMINAL_STATES.has(job.state)) {
      badge.title = `exit code ${job.exitCode}`;
    }
    stateCell.appendChild(badge);
    const actionCell = row.insertCell();
    actionCell.className = 'pai-magic-actions';
    if (!TERMINAL_STATES.has(job.state)) {
      const stop = button('Stop', 'pai-magic-stop jp-mod-warn');
      stop.title = `Stop ${job.name}`;
      stop.addEventListener('click', event => {
        event.stopPropagation();
        this._options.stop(job, stop);
      });
      stop.addEventListener('keydown', event => event.stopPropagation());
      actionCell.appendChild(stop);
    }
    activatable(row, `Job ${job.name}, ${job.state}`, () => {
      this.selected = full;
      this._options.select(job);
    });
    return row;
  }

  private _keyword!: HTMLInputElement;
  private _state!: HTMLSelectElement;
  private _scope!: HTMLSelectElement;
  private _vc!: HTMLInputElement;
  private _table!: HTMLTableElement;
  private _body!: HTMLTableSectionElement;
  private _prev!: HTMLButtonElement;
  private _next!: HTMLButtonElement;
  private _pageLabel!: HTMLSpanElement;
  private _offset = 0;
  private _applied = { keyword: '', state: '', scope: 'mine', vc: '' };
  private _seq = 0;
  private _typing = 0;
  private _selected: string | null = null;
}
