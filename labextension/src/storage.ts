/**
 * The cluster's storages: type and server, whether (and where) each is mounted on this
 * machine and how full it is, the mount command, and "Use" to add it to the submit form.
 */

import { requestAPI } from './request';
import { IStorage } from './types';
import { button, copyButton, el, ellipsized, formatBytes } from './dom';

export class StorageView {
  readonly node: HTMLElement;

  constructor(private _use: (name: string) => void) {
    this.node = el('div', 'pai-magic-storage');
    const bar = el('div', 'pai-magic-toolbar');
    const refresh = button('Refresh');
    refresh.name = 'refresh-storages';
    refresh.addEventListener('click', () => void this.refresh());
    bar.appendChild(refresh);
    this.node.appendChild(bar);
    this._error = el('div', 'pai-magic-error');
    this._error.setAttribute('role', 'alert');
    this._error.hidden = true;
    this.node.appendChild(this._error);
    this._list = el('div', 'pai-magic-storage-list');
    this.node.appendChild(this._list);
  }

  get loaded(): boolean {
    return this._loaded;
  }

  async refresh(): Promise<void> {
    try {
      const data = await requestAPI<{ storages: IStorage[] }>('storages');
      this._error.hidden = true;
      this._loaded = true;
      this._render(data.storages);
    } catch (error) {
      this._error.textContent = (error as Error).message;
      this._error.hidden = false;
    }
  }

  private _render(storages: IStorage[]): void {
    const list = this._list;
    list.textContent = '';
    if (storages.length === 0) {
      list.appendChild(el('div', 'pai-magic-empty', 'This cluster has no storage for you.'));
      return;
    }
    for (const storage of storages) {
      const card = el('div', 'pai-magic-storage-item');
      card.dataset.storage = storage.name;
      card.dataset.mounted = String(storage.mounted);
      const head = el('div', 'pai-magic-row');
      head.appendChild(ellipsized('pai-magic-storage-name', storage.name));
      const flags = [storage.type, storage.default ? 'default' : '', storage.readOnly ? 'read-only' : '']
        .filter(Boolean)
        .join(', ');
      head.appendChild(el('span', 'pai-magic-muted', flags));
      const use = button('Use', 'pai-magic-use');
      use.title = `Mount ${storage.name} at ${storage.mountPath} in the submitted job`;
      use.addEventListener('click', () => this._use(storage.name));
      head.appendChild(use);
      card.appendChild(head);
      const where = storage.server && storage.path ? `${storage.server}:${storage.path}` : '';
      if (where) {
        card.appendChild(ellipsized('pai-magic-muted pai-magic-storage-source', where));
      }
      const mount = el(
        'div',
        `pai-magic-mount pai-magic-mount-${storage.mounted ? 'yes' : 'no'}`,
        storage.mounted
          ? `Mounted here at ${storage.mountpoint} (by ${storage.mountedBy})`
          : `Not mounted here; jobs see it at ${storage.mountPath}`
      );
      card.appendChild(mount);
      if (storage.usage) {
        const usage = el('div', 'pai-magic-usage');
        const fraction = storage.usage.fractionUsed ?? 0;
        const meter = el('meter', '') as HTMLMeterElement;
        meter.min = 0;
        meter.max = 1;
        meter.high = 0.9;
        meter.value = fraction;
        usage.appendChild(meter);
        usage.appendChild(
          el(
            'span',
            storage.usage.warn ? 'pai-magic-warn' : '',
            storage.usage.used !== null
              ? ` ${formatBytes(storage.usage.used)} used, ${formatBytes(storage.usage.free)} free`
              : ` ${storage.usage.message}`
          )
        );
        usage.title = storage.usage.message;
        card.appendChild(usage);
      }
      if (storage.mountCommand && !storage.mounted) {
        // the command is cut at the panel's width: a Copy button, as for the SSH lines, so
        // it can be pasted into a terminal without widening the sidebar to read it
        const line = storage.mountCommand;
        const row = el('div', 'pai-magic-ssh-line pai-magic-mount-line');
        const command = el('code', 'pai-magic-ellipsis pai-magic-mount-command', line);
        command.title = line;
        row.appendChild(command);
        const copy = copyButton(line, 'Copy the mount command to the clipboard');
        copy.name = 'copy-mount-command';
        row.appendChild(copy);
        card.appendChild(row);
      }
      list.appendChild(card);
    }
  }

  private _error: HTMLDivElement;
  private _list: HTMLDivElement;
  private _loaded = false;
}
