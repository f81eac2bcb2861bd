/**
 * Notifications for kernels starting on the cluster. JupyterLab only says "Starting" while
 * a kernel job is scheduled and its image pulled, which can take minutes; the provisioner
 * records each phase in the Jupyter server and the server extension serves them as a long
 * poll (GET kernel-starts?since=VERSION&wait=SECONDS).
 *
 * While at least one installed kernelspec uses the pai-magic provisioner, ONE poll loop
 * follows every start (a lumino Poll: backs off on errors, stands by while the browser tab
 * is hidden). Each start seen while starting gets ONE notification: 'in-progress' with the
 * latest phase and the elapsed time, then 'success' (closing itself) or 'error' with the
 * one-line reason. A restart in the kernel's running job takes a second, so it is only shown
 * when it lasts longer than that or fails. A notification the person closed stays closed.
 * A kernel whose job ended outside Jupyter (portal, CLI) is an 'ended' entry: one error
 * notification with the reason, else the notebook only says "No Kernel".
 */
import { Notification, showErrorMessage } from '@jupyterlab/apputils';
import { KernelSpec } from '@jupyterlab/services';
import { Poll } from '@lumino/polling';

import { formatElapsed } from './dom';
import { requestAPI } from './request';
import { IKernelStart, IKernelStarts } from './types';

/** The provisioner_name in a kernelspec's metadata.kernel_provisioner. */
export const PROVISIONER = 'pai-magic';
/** Seconds one request may wait for a change (the server allows up to 30). */
const WAIT_SECONDS = 25;
/** A restart shorter than this gets no notification (it is in the running job). */
const RESTART_QUIET_MS = 3000;
/** How long the "ready" toast stays (it remains in the notification center). */
const READY_CLOSE_MS = 6000;

/** Whether any of these kernelspecs starts its kernel in an OpenPAI job. */
export function usesPaiProvisioner(specs: KernelSpec.ISpecModels | null | undefined): boolean {
  for (const spec of Object.values(specs?.kernelspecs ?? {})) {
    const provisioner = (spec?.metadata as any)?.kernel_provisioner;
    if (provisioner && provisioner.provisioner_name === PROVISIONER) {
      return true;
    }
  }
  return false;
}

function subject(start: IKernelStart): string {
  const file = start.path ? start.path.split('/').pop() : '';
  return file ? `Kernel for ${file}` : start.displayName || 'Kernel';
}

/**
 * The notification's text (JupyterLab cuts it at 140 characters, so the part that changes
 * least comes first, the phase line last).
 */
export function startMessage(start: IKernelStart, now: number): string {
  const elapsed = formatElapsed((start.finished ?? now) - start.started);
  if (start.state === 'failed') {
    return `${subject(start)} did not start: ${start.error ?? 'see the Jupyter server log.'}`;
  }
  if (start.state === 'ended') {
    return `${subject(start)} ended: ${start.error ?? 'see the Jupyter server log.'}`;
  }
  if (start.state === 'ready') {
    const where = start.job ? ` in job ${start.job}` : '';
    return `${subject(start)}: kernel ready on OpenPAI after ${elapsed}${where}`;
  }
  const last = start.phases.length > 0 ? start.phases[start.phases.length - 1].text : '';
  const verb = start.restart ? 'restarting' : 'starting';
  return `${subject(start)} ${verb} on OpenPAI · ${elapsed}\n${last || 'preparing the job'}`;
}

/**
 * The button of a failed start's notification: the toast cuts the reason at 140 characters,
 * and the cut part is the one saying what to do next, so the whole line opens in a dialog
 * (where it can also be selected and copied). The notification stays.
 */
function reasonAction(start: IKernelStart, message: string): Notification.IAction {
  return {
    label: 'Show the reason',
    caption: message,
    displayType: 'accent',
    callback: event => {
      event.preventDefault();
      const title = start.state === 'ended' ? 'ended' : 'did not start';
      void showErrorMessage(`${subject(start)} ${title}`, {
        message: start.error ?? 'See the Jupyter server log.'
      });
    }
  };
}

interface ITracked {
  start: IKernelStart;
  /** The notification's id once shown. */
  notification: string | null;
  /** Nothing more to show (finished, ignored, or closed by the person). */
  done: boolean;
}

export class KernelStartNotifier {
  constructor(specs: KernelSpec.IManager) {
    this._specs = specs;
    specs.specsChanged.connect(this._sync, this);
    void specs.ready.then(() => this._sync()).catch(() => undefined);
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  /** Whether the long poll runs (a pai-magic kernelspec is installed). */
  get isFollowing(): boolean {
    return this._poll !== null;
  }

  dispose(): void {
    if (this._isDisposed) {
      return;
    }
    this._isDisposed = true;
    this._specs.specsChanged.disconnect(this._sync, this);
    this._stop();
  }

  /** Follow starts while a pai-magic kernelspec is installed, and only then. */
  private _sync(): void {
    if (this._isDisposed) {
      return;
    }
    const wanted = usesPaiProvisioner(this._specs.specs);
    if (wanted && this._poll === null) {
      this._version = null;
      this._primed = false;
      this._poll = new Poll({
        auto: true,
        factory: () => this._fetch(),
        frequency: { interval: 250, backoff: true, max: 60 * 1000 },
        name: 'pai-magic:kernel-starts',
        standby: 'when-hidden'
      });
    } else if (!wanted && this._poll !== null) {
      this._stop();
    }
  }

  private _stop(): void {
    this._poll?.dispose();
    this._poll = null;
    this._abort?.abort();
    this._abort = null;
    this._setTicking(false);
  }

  private async _fetch(): Promise<void> {
    const query =
      this._version === null ? '' : `?since=${this._version}&wait=${WAIT_SECONDS}`;
    const abort = new AbortController();
    this._abort = abort;
    const answer = await requestAPI<IKernelStarts>(`kernel-starts${query}`, {
      signal: abort.signal
    });
    if (abort.signal.aborted || this._poll === null) {
      return;
    }
    this._version = answer.version;
    this._offset = answer.now - Date.now();
    this._apply(answer.starts);
  }

  private _apply(starts: IKernelStart[]): void {
    const present = new Set<string>();
    for (const start of starts) {
      present.add(start.id);
      let tracked = this._tracked.get(start.id);
      if (!tracked) {
        // one already over in the page's first answer happened before the page: history. After
        // that, one first seen over is news too: a start that fails in less than the poll's
        // gap (no ipykernel: 0.2 s) or a kernel that ended (a quick 'ready' shows nothing).
        const news = start.state === 'starting' || this._primed;
        tracked = { start, notification: null, done: !news };
        this._tracked.set(start.id, tracked);
      }
      tracked.start = start;
      if (!tracked.done) {
        this._show(tracked);
      }
    }
    for (const id of Array.from(this._tracked.keys())) {
      if (!present.has(id)) {
        this._tracked.delete(id); // the server forgot it: so can we (bounded)
      }
    }
    this._primed = true;
    this._setTicking(Array.from(this._tracked.values()).some(t => !t.done));
  }

  /** Show (or update) one start's notification; also called every second for the time. */
  private _show(tracked: ITracked): void {
    const start = tracked.start;
    const now = Date.now() + this._offset;
    const message = startMessage(start, now);
    if (start.state === 'starting') {
      if (tracked.notification === null) {
        if (start.restart && now - start.started < RESTART_QUIET_MS) {
          return; // a quick restart needs no notification
        }
        tracked.notification = Notification.emit(message, 'in-progress', { autoClose: false });
      } else if (
        !Notification.update({ id: tracked.notification, message, type: 'in-progress', autoClose: false })
      ) {
        tracked.done = true; // the person closed it
      }
      return;
    }
    tracked.done = true;
    const type = start.state === 'ready' ? 'success' : 'error';
    const autoClose = start.state === 'ready' ? READY_CLOSE_MS : false;
    const failed = start.state === 'failed' || start.state === 'ended';
    const actions = failed ? [reasonAction(start, message)] : [];
    if (tracked.notification !== null) {
      Notification.update({ id: tracked.notification, message, type, autoClose, actions });
    } else if (failed) {
      tracked.notification = Notification.emit(message, type, { autoClose, actions });
    }
  }

  private _setTicking(on: boolean): void {
    if (on && this._ticker === null) {
      this._ticker = window.setInterval(() => {
        for (const tracked of this._tracked.values()) {
          if (!tracked.done) {
            this._show(tracked);
          }
        }
      }, 1000);
    } else if (!on && this._ticker !== null) {
      window.clearInterval(this._ticker);
      this._ticker = null;
    }
  }

  private _specs: KernelSpec.IManager;
  private _poll: Poll | null = null;
  private _abort: AbortController | null = null;
  private _version: number | null = null;
  private _offset = 0;
  /** Whether an answer was applied (what the first one holds happened before this page). */
  private _primed = false;
  private _tracked = new Map<string, ITracked>();
  private _ticker: number | null = null;
  private _isDisposed = false;
}
