/**
 * The registry's images: repositories (filtered), then one repository's tags with size,
 * created time and platforms, each with "Use" (into the submit form's image field) and
 * "Copy". Read on demand (the tab's Refresh), never polled: a registry walk is not cheap.
 */
import { Clipboard } from '@jupyterlab/apputils';

import { requestAPI } from './request';
import { IImageList, IImageTags } from './types';
import { activatable, button, el, ellipsized, formatBytes, textInput } from './dom';

export class ImagesView {
  readonly node: HTMLElement;

  constructor(private _use: (reference: string) => void) {
    this.node = el('div', 'pai-magic-images');
    const bar = el('form', 'pai-magic-toolbar');
    this._filter = textInput('image-filter', 'filter, e.g. team/*');
    this._filter.setAttribute('aria-label', 'Filter repositories');
    const list = button('List');
    list.type = 'submit';
    list.name = 'list-images';
    bar.appendChild(this._filter);
    bar.appendChild(list);
    bar.addEventListener('submit', event => {
      event.preventDefault();
      void this.refresh();
    });
    this.node.appendChild(bar);
    this._registry = el('div', 'pai-magic-muted');
    this.node.appendChild(this._registry);
    this._error = el('div', 'pai-magic-error');
    this._error.setAttribute('role', 'alert');
    this._error.hidden = true;
    this.node.appendChild(this._error);
    this._repos = el('ul', 'pai-magic-repos');
    this.node.appendChild(this._repos);
    this._tags = el('div', 'pai-magic-tags');
    this.node.appendChild(this._tags);
  }

  get loaded(): boolean {
    return this._loaded;
  }

  async refresh(): Promise<void> {
    const filter = this._filter.value.trim();
    const seq = ++this._seq;
    this._registry.textContent = 'Listing the registry...';
    try {
      const data = await requestAPI<IImageList>(
        `images${filter ? `?filter=${encodeURIComponent(filter)}` : ''}`
      );
      if (seq !== this._seq) {
        return; // a newer listing was asked for meanwhile
      }
      this._repos.dataset.filter = filter;
      this._showError(null);
      this._loaded = true;
      this._registry.textContent = `${data.repositories.length} repositories in ${data.registry}`;
      this._repos.textContent = '';
      for (const repo of data.repositories) {
        const item = el('li', 'pai-magic-repo');
        item.dataset.repository = repo.repository;
        item.appendChild(ellipsized('pai-magic-repo-name', repo.repository));
        item.appendChild(el('span', 'pai-magic-muted', ` ${repo.tags.length} tags`));
        activatable(item, `Tags of ${repo.repository}`, () => void this._openRepo(repo.repository));
        this._repos.appendChild(item);
      }
      if (data.repositories.length === 0) {
        this._repos.appendChild(el('li', 'pai-magic-empty', 'No repositories.'));
      }
    } catch (error) {
      if (seq === this._seq) {
        this._registry.textContent = '';
        this._showError((error as Error).message);
      }
    }
  }

  private async _openRepo(repository: string): Promise<void> {
    for (const node of Array.from(this._repos.querySelectorAll('.pai-magic-selected'))) {
      node.classList.remove('pai-magic-selected');
    }
    this._repos
      .querySelector(`[data-repository="${CSS.escape(repository)}"]`)
      ?.classList.add('pai-magic-selected');
    this._tags.textContent = 'Reading tags...';
    try {
      const data = await requestAPI<IImageTags>(
        `images/tags?repository=${encodeURIComponent(repository)}`
      );
      this._showError(null);
      this._renderTags(data);
    } catch (error) {
      this._tags.textContent = '';
      this._showError((error as Error).message);
    }
  }

  private _renderTags(data: IImageTags): void {
    const box = this._tags;
    box.textContent = '';
    box.dataset.repository = data.repository;
    box.appendChild(el('h4', 'pai-magic-ellipsis', data.repository)).title = data.repository;
    const table = el('table', 'pai-magic-table pai-magic-tag-table');
    const head = table.createTHead().insertRow();
    for (const title of ['Tag', 'Size', 'Created', 'Platforms', '']) {
      head.appendChild(el('th', '', title));
    }
    const body = table.createTBody();
    for (const tag of data.tags) {
      const row = body.insertRow();
      row.className = 'pai-magic-tag';
      row.dataset.tag = tag.tag;
      // data-label: the column's name, shown before the value when the narrow layout
      // stacks a row's cells (base.css, container query)
      const cell = (label: string, cls: string) => {
        const node = row.insertCell();
        node.dataset.label = label;
        node.className = cls;
        return node;
      };
      cell('Tag', 'pai-magic-tag-cell').appendChild(ellipsized('pai-magic-tag-name', tag.tag, tag.reference));
      cell('Size', 'pai-magic-tag-size').textContent = tag.error ? '' : formatBytes(tag.size);
      const created = cell('Created', 'pai-magic-tag-created');
      created.textContent = tag.created ? new Date(tag.created).toLocaleDateString() : '';
      created.title = tag.created ?? '';
      const platforms = cell(tag.error ? '' : 'Platforms', 'pai-magic-tag-platforms');
      platforms.textContent = tag.error ?? tag.platforms.join(', ');
      platforms.title = platforms.textContent;
      const actions = cell('', 'pai-magic-actions');
      const use = button('Use', 'pai-magic-use');
      use.title = `Put ${tag.reference} in the submit form`;
      use.addEventListener('click', () => this._use(tag.reference));
      const copy = button('Copy', 'pai-magic-copy');
      copy.title = `Copy ${tag.reference}`;
      copy.addEventListener('click', () => {
        Clipboard.copyToSystem(tag.reference);
        copy.textContent = 'Copied';
        window.setTimeout(() => (copy.textContent = 'Copy'), 1500);
      });
      actions.appendChild(use);
      actions.appendChild(copy);
    }
    box.appendChild(table);
    box.scrollIntoView({ block: 'nearest' });
  }

  private _showError(message: string | null): void {
    this._error.textContent = message ?? '';
    this._error.hidden = !message;
  }

  private _filter: HTMLInputElement;
  private _registry: HTMLDivElement;
  private _error: HTMLDivElement;
  private _repos: HTMLUListElement;
  private _tags: HTMLDivElement;
  private _loaded = false;
  private _seq = 0;
}
