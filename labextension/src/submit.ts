/**
 * The submit form: the magics' options as separate fields (cpu, memory, VC, instances,
 * storage, retries, SSH, keep-alive), YAML import and export, and clone (the form filled
 * from a job's config). Field names are the spec keys of pai_magic/server/submit.py; a
 * refused value's one line (`{"error", "field"}`) is shown under the field it names and
 * cleared by the next action.
 */
import { PaiRequestError, postAPI } from './request';
import { IJobSpec, IProtocol } from './types';
import {
  button,
  checkboxField,
  el,
  labelled,
  newRequestId,
  numberInput,
  textInput
} from './dom';

/** Other spellings a message may use for a form field (CLI options, snake_case). */
const FIELD_ALIASES: { [name: string]: string } = {
  memory: 'memoryMB',
  memory_mb: 'memoryMB',
  vc: 'virtualCluster',
  virtual_cluster: 'virtualCluster',
  storage: 'storages',
  keep_alive: 'keepAlive',
  command: 'commands',
  retries: 'retry',
  job_retry: 'retry'
};

export interface ISubmitFormOptions {
  /** Called with the new job's name once submitted. */
  submitted: (name: string) => void;
}

export class SubmitForm {
  readonly node: HTMLElement;

  constructor(private _options: ISubmitFormOptions) {
    this.node = el('div', 'pai-magic-submit');
    this.node.dataset.testid = 'pai-magic-submit';
    this._build();
  }

  /** Fill the form from a spec (clone, YAML import); fields the spec leaves out are reset. */
  fill(spec: IJobSpec): void {
    this._inputs.name.value = spec.name ?? '';
    this._inputs.image.value = spec.image ?? '';
    this._commands.value = (spec.commands ?? []).join('\n');
    this._inputs.virtualCluster.value = spec.virtualCluster ?? '';
    this._inputs.gpu.value = String(spec.gpu ?? 0);
    this._inputs.cpu.value = String(spec.cpu ?? 1);
    this._inputs.memoryMB.value = String(spec.memoryMB ?? 4096);
    this._inputs.instances.value = String(spec.instances ?? 1);
    this._inputs.retry.value = String(spec.retry ?? 0);
    this._inputs.storages.value = (spec.storages ?? []).join(', ');
    this._ssh.checked = !!spec.ssh;
    this._keepAlive.checked = !!spec.keepAlive;
    this.clearErrors();
  }

  /** The form as the spec the server takes. */
  spec(): IJobSpec {
    const spec: IJobSpec = {
      name: this._inputs.name.value.trim() || 'sidebar',
      image: this._inputs.image.value.trim(),
      commands: this._commands.value
        .split('\n')
        .map(line => line.replace(/\s+$/, ''))
        .filter(line => line.trim().length > 0),
      ssh: this._ssh.checked,
      keepAlive: this._keepAlive.checked,
      storages: this._inputs.storages.value
        .split(/[,\n]/)
        .map(item => item.trim())
        .filter(item => item.length > 0)
    };
    const vc = this._inputs.virtualCluster.value.trim();
    if (vc) {
      spec.virtualCluster = vc;
    }
    for (const key of ['gpu', 'cpu', 'memoryMB', 'instances', 'retry'] as const) {
      const raw = this._inputs[key].value.trim();
      if (raw !== '') {
        spec[key] = Number(raw);
      }
    }
    return spec;
  }

  setImage(reference: string): void {
    this._inputs.image.value = reference;
    this.clearErrors();
  }

  /** Put the YAML in the YAML box and open it (clone of a job the form cannot hold). */
  showYaml(text: string, message: string | null): void {
    this._yaml.value = text;
    this._yamlBox.open = true;
    this._showFormMessage(message);
  }

  get yamlText(): string {
    return this._yaml.value;
  }

  clearErrors(): void {
    for (const node of Array.from(this.node.querySelectorAll<HTMLElement>('[data-field-error]'))) {
      node.textContent = '';
      node.hidden = true;
      node.parentElement?.classList.remove('pai-magic-invalid');
      node.parentElement?.querySelector('input, textarea')?.removeAttribute('aria-invalid');
    }
    this._formError.textContent = '';
    this._formError.hidden = true;
    this._showFormMessage(null);
  }

  /** Show an error under its field (or above the buttons when it names none we show). */
  showError(error: unknown): void {
    const message = (error as Error).message;
    let field = error instanceof PaiRequestError ? error.field : null;
    if (field) {
      field = field.replace(/^spec\./, '');
      field = FIELD_ALIASES[field] ?? field;
    }
    const target = field
      ? this.node.querySelector<HTMLElement>(`[data-field-error="${CSS.escape(field)}"]`)
      : null;
    if (target) {
      target.textContent = message;
      target.hidden = false;
      target.parentElement?.classList.add('pai-magic-invalid');
      const input = target.parentElement?.querySelector<HTMLElement>('input, textarea');
      input?.setAttribute('aria-invalid', 'true');
      target.scrollIntoView({ block: 'nearest' });
      // the clicked Submit button was disabled while the request ran, which drops the focus
      // to the page: give it to the field to fix, so typing goes on where the error is
      input?.focus({ preventScroll: true });
    } else {
      this._formError.textContent = message;
      this._formError.hidden = false;
      this._formError.scrollIntoView({ block: 'nearest' });
    }
  }

  // ---- building ----------------------------------------------------------------------------

  private _build(): void {
    const form = el('form', 'pai-magic-submit-form');
    form.noValidate = true; // the server's one line says what is wrong, next to the field
    const i = this._inputs;
    i.name = textInput('name', 'name stem, e.g. train');
    i.image = textInput('image', 'docker image, e.g. ubuntu:22.04');
    i.image.value = 'ubuntu:22.04';
    this._commands = el('textarea', 'jp-mod-styled pai-magic-input pai-magic-commands');
    this._commands.name = 'commands';
    this._commands.rows = 3;
    this._commands.placeholder = 'shell commands, one per line';
    // placeholders fit the default sidebar width (a cut one reads as a different hint)
    i.virtualCluster = textInput('virtualCluster', 'profile\'s');
    i.gpu = numberInput('gpu', 0, 0);
    i.cpu = numberInput('cpu', 1, 1);
    i.memoryMB = numberInput('memoryMB', 4096, 1);
    i.instances = numberInput('instances', 1, 1);
    i.retry = numberInput('retry', 0, 0);
    i.storages = textInput('storages', 'NAME[:/PATH], NAME2 ...');

    form.appendChild(labelled('Name', i.name, 'name'));
    form.appendChild(labelled('Image', i.image, 'image'));
    form.appendChild(labelled('Commands', this._commands, 'commands'));
    const grid = el('div', 'pai-magic-grid');
    grid.appendChild(labelled('GPUs', i.gpu, 'gpu'));
    grid.appendChild(labelled('CPUs', i.cpu, 'cpu'));
    grid.appendChild(labelled('Memory (MB)', i.memoryMB, 'memoryMB'));
    grid.appendChild(labelled('Instances', i.instances, 'instances'));
    grid.appendChild(labelled('Retries', i.retry, 'retry'));
    grid.appendChild(labelled('Virtual cluster', i.virtualCluster, 'virtualCluster'));
    form.appendChild(grid);
    form.appendChild(labelled('Storages', i.storages, 'storages'));
    const [sshField, ssh] = checkboxField('ssh', 'SSH into the tasks (your key is added)');
    const [keepField, keep] = checkboxField('keepAlive', 'keep the container up after the commands');
    this._ssh = ssh;
    this._keepAlive = keep;
    form.appendChild(sshField);
    form.appendChild(keepField);

    this._formError = el('div', 'pai-magic-form-error');
    this._formError.setAttribute('role', 'alert');
    this._formError.hidden = true;
    form.appendChild(this._formError);
    this._formMessage = el('div', 'pai-magic-form-message');
    this._formMessage.hidden = true;
    form.appendChild(this._formMessage);

    const buttons = el('div', 'pai-magic-buttons');
    this._submitButton = button('Submit', 'jp-mod-accept');
    this._submitButton.type = 'submit';
    this._submitButton.name = 'submit';
    const exportButton = button('Export YAML');
    exportButton.name = 'export';
    exportButton.title = 'Show this form as an OpenPAI protocol document';
    buttons.appendChild(this._submitButton);
    buttons.appendChild(exportButton);
    form.appendChild(buttons);
    form.addEventListener('submit', event => {
      event.preventDefault();
      void this._submit({ spec: this.spec() });
    });
    exportButton.addEventListener('click', () => void this._export());
    this.node.appendChild(form);

    // YAML: import (paste or load a file, then fill the form or submit it as is) and export
    this._yamlBox = el('details', 'pai-magic-yaml');
    this._yamlBox.appendChild(el('summary', '', 'YAML (import / export)'));
    this._yaml = el('textarea', 'jp-mod-styled pai-magic-input pai-magic-yaml-text');
    this._yaml.name = 'yaml';
    this._yaml.rows = 10;
    this._yaml.spellcheck = false;
    this._yaml.placeholder = 'an OpenPAI protocol v2 document';
    this._yamlBox.appendChild(labelled('Protocol YAML', this._yaml, 'yaml'));
    const yamlButtons = el('div', 'pai-magic-buttons');
    const load = button('Load file...');
    load.name = 'load-yaml';
    const file = el('input', 'pai-magic-file');
    file.type = 'file';
    file.accept = '.yaml,.yml,text/yaml,application/x-yaml';
    file.hidden = true;
    load.addEventListener('click', () => file.click());
    file.addEventListener('change', () => void this._loadFile(file));
    const toForm = button('Fill the form');
    toForm.name = 'import';
    toForm.addEventListener('click', () => void this._import());
    const submitYaml = button('Submit YAML', 'jp-mod-accept');
    submitYaml.name = 'submit-yaml';
    submitYaml.addEventListener('click', () => void this._submit({ yaml: this._yaml.value }));
    const download = button('Download');
    download.name = 'download-yaml';
    download.addEventListener('click', () => this._download());
    for (const node of [toForm, submitYaml, load, download, file]) {
      yamlButtons.appendChild(node);
    }
    this._yamlBox.appendChild(yamlButtons);
    this.node.appendChild(this._yamlBox);

    // editing a field clears its own stale message
    form.addEventListener('input', event => {
      const wrap = (event.target as HTMLElement).closest('[data-field]');
      const error = wrap?.querySelector<HTMLElement>('[data-field-error]');
      if (wrap && error && !error.hidden) {
        error.hidden = true;
        error.textContent = '';
        wrap.classList.remove('pai-magic-invalid');
        (event.target as HTMLElement).removeAttribute('aria-invalid');
      }
    });
  }

  // ---- actions -------------------------------------------------------------------------------

  private async _submit(body: { spec?: IJobSpec; yaml?: string }): Promise<void> {
    if (this._submitting) {
      return;
    }
    this.clearErrors();
    this._submitting = true;
    this._submitButton.disabled = true;
    try {
      const answer = await postAPI<{ name: string }>('jobs', {
        ...body,
        requestId: newRequestId()
      });
      this._showFormMessage(`Submitted ${answer.name}.`);
      this._options.submitted(answer.name);
    } catch (error) {
      this.showError(error);
    } finally {
      this._submitting = false;
      this._submitButton.disabled = false;
    }
  }

  private async _export(): Promise<void> {
    this.clearErrors();
    try {
      const answer = await postAPI<IProtocol>('protocol', { spec: this.spec() });
      this._yaml.value = answer.yaml;
      this._yamlBox.open = true;
      this._yaml.scrollIntoView({ block: 'nearest' });
    } catch (error) {
      this.showError(error);
    }
  }

  private async _import(): Promise<void> {
    this.clearErrors();
    try {
      const answer = await postAPI<IProtocol>('protocol', { yaml: this._yaml.value });
      if (answer.spec) {
        this.fill(answer.spec);
        this._showFormMessage('The form now holds this YAML\'s job.');
      } else {
        this._showFormMessage(answer.specMessage);
      }
    } catch (error) {
      this.showError(error);
    }
  }

  private async _loadFile(input: HTMLInputElement): Promise<void> {
    const file = input.files && input.files[0];
    if (!file) {
      return;
    }
    this._yaml.value = await file.text();
    input.value = '';
    await this._import();
  }

  private _download(): void {
    const blob = new Blob([this._yaml.value], { type: 'text/yaml' });
    const url = URL.createObjectURL(blob);
    const link = el('a', '');
    link.href = url;
    link.download = `${this._inputs.name.value.trim() || 'job'}.yaml`;
    link.click();
    window.setTimeout(() => URL.revokeObjectURL(url), 1000);
  }

  private _showFormMessage(message: string | null): void {
    this._formMessage.textContent = message ?? '';
    this._formMessage.hidden = !message;
  }

  private _inputs: { [key: string]: HTMLInputElement } = {};
  private _commands!: HTMLTextAreaElement;
  private _ssh!: HTMLInputElement;
  private _keepAlive!: HTMLInputElement;
  private _formError!: HTMLDivElement;
  private _formMessage!: HTMLDivElement;
  private _submitButton!: HTMLButtonElement;
  private _yamlBox!: HTMLDetailsElement;
  private _yaml!: HTMLTextAreaElement;
  private _submitting = false;
}
