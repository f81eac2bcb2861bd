/**
 * Small DOM helpers shared by the sidebar's views: every node is made here with the
 * JupyterLab classes (jp-mod-styled ...) so the light and dark themes style it.
 */
import { Clipboard } from '@jupyterlab/apputils';

/** Create an element with a class and optional text. */
export function el<K extends keyof HTMLElementTagNameMap>(
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

/**
 * A label above its input, and under it the line where a refused value's message goes
 * (`[data-field-error=NAME]`), so an error is read next to the field it is about.
 */
export function labelled(label: string, input: HTMLElement, field?: string): HTMLLabelElement {
  const wrap = el('label', 'pai-magic-field');
  wrap.appendChild(el('span', 'pai-magic-field-label', label));
  wrap.appendChild(input);
  if (field) {
    wrap.dataset.field = field;
    wrap.appendChild(fieldError(field));
  }
  return wrap;
}

/** The (hidden until used) line where the server's message about ``field`` is shown. */
export function fieldError(field: string): HTMLDivElement {
  const error = el('div', 'pai-magic-field-error');
  error.dataset.fieldError = field;
  error.setAttribute('role', 'alert');
  error.hidden = true;
  return error;
}

export function textInput(name: string, placeholder: string, type = 'text'): HTMLInputElement {
  const input = el('input', 'jp-mod-styled pai-magic-input');
  input.type = type;
  input.name = name;
  input.placeholder = placeholder;
  input.spellcheck = false;
  input.autocomplete = type === 'password' ? 'current-password' : 'off';
  return input;
}

export function numberInput(name: string, value: number, min: number): HTMLInputElement {
  const input = textInput(name, String(value), 'number');
  input.min = String(min);
  input.step = '1';
  input.value = String(value);
  return input;
}

export function checkbox(name: string, label: string): [HTMLLabelElement, HTMLInputElement] {
  const input = el('input', '');
  input.type = 'checkbox';
  input.name = name;
  const wrap = el('label', 'pai-magic-checkbox');
  wrap.appendChild(input);
  wrap.appendChild(document.createTextNode(` ${label}`));
  return [wrap, input];
}

/** A checkbox with its own error line under it, for a form field the server may refuse. */
export function checkboxField(name: string, label: string): [HTMLDivElement, HTMLInputElement] {
  const [wrap, input] = checkbox(name, label);
  const field = el('div', 'pai-magic-field');
  field.appendChild(wrap);
  field.appendChild(fieldError(name));
  return [field, input];
}

export function selectInput(name: string, options: [string, string][]): HTMLSelectElement {
  const select = el('select', 'jp-mod-styled pai-magic-select');
  select.name = name;
  for (const [value, label] of options) {
    const option = el('option', '', label);
    option.value = value;
    select.appendChild(option);
  }
  return select;
}

export function button(label: string, className = ''): HTMLButtonElement {
  const node = el('button', `jp-Button jp-mod-styled pai-magic-button ${className}`, label);
  node.type = 'button';
  return node;
}

/** "Copy": puts `text` on the clipboard and says "Copied" for a moment. */
export function copyButton(text: string, title = 'Copy to the clipboard'): HTMLButtonElement {
  const copy = button('Copy', 'pai-magic-copy');
  copy.title = title;
  copy.addEventListener('click', () => {
    Clipboard.copyToSystem(text);
    copy.textContent = 'Copied';
    window.setTimeout(() => (copy.textContent = 'Copy'), 1500);
  });
  return copy;
}

/** A state in words AND colour (never colour alone). */
export function stateBadge(state: string): HTMLSpanElement {
  const badge = el('span', `pai-magic-state pai-magic-state-${state}`, state);
  badge.dataset.state = state;
  return badge;
}

/** A cell whose text is cut with an ellipsis, the whole text on hover. */
export function ellipsized(className: string, text: string, title?: string): HTMLSpanElement {
  const node = el('span', `pai-magic-ellipsis ${className}`, text);
  node.title = title ?? text;
  return node;
}

export function formatTime(ms: number | null): string {
  if (!ms) {
    return '';
  }
  return new Date(ms).toLocaleString();
}

export function formatBytes(n: number | null): string {
  if (n === null || n === undefined) {
    return '';
  }
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/** A request id per submission, so a double click or a retried POST never submits twice. */
export function newRequestId(): string {
  const c: any = (globalThis as any).crypto;
  if (c && typeof c.randomUUID === 'function') {
    return c.randomUUID();
  }
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 12)}`;
}

/** Make a table row act like a button: focusable, Enter/Space activate it. */
export function activatable(node: HTMLElement, label: string, action: () => void): void {
  node.tabIndex = 0;
  node.setAttribute('role', 'button');
  node.setAttribute('aria-label', label);
  node.addEventListener('click', action);
  node.addEventListener('keydown', event => {
    if ((event.key === 'Enter' || event.key === ' ') && event.target === node) {
      event.preventDefault();
      action();
    }
  });
}

/** "0.8s", "42s", "2m 05s", "1h 02m": an elapsed time in a line of text. */
export function formatElapsed(ms: number): string {
  if (ms < 10000) {
    return `${(Math.max(0, ms) / 1000).toFixed(1)}s`;
  }
  const total = Math.floor(ms / 1000);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const two = (n: number) => String(n).padStart(2, '0');
  if (h > 0) {
    return `${h}h ${two(m)}m`;
  }
  return m > 0 ? `${m}m ${two(s)}s` : `${s}s`;
}
