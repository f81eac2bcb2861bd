/**
 * JupyterLab's own "Error Starting Kernel" dialog (the session context's) shows the server's
 * reason in a <pre>, so a kernel job's one-line reason (a job name, a path, what to do next)
 * ran off the dialog's right edge. CSS alone cannot pick that dialog out (its DOM is a
 * generic `.jp-Dialog-body > div > pre`, and a rule on that would reach every other dialog
 * built the same way), so its title picks it: each new dialog is watched until its header is
 * rendered, and the kernel-error one gets a class (`pai-magic-start-error`) that the style
 * sheet's wrapping rule needs. Only while a pai-magic kernelspec is installed: a JupyterLab
 * without one is untouched.
 */
import { Dialog } from '@jupyterlab/apputils';

/** The class that lets base.css wrap the reason. */
export const START_ERROR_CLASS = 'pai-magic-start-error';

/** The session context's dialog title, in English and in JupyterLab's current language. */
function kernelErrorTitles(): Set<string> {
  const english = 'Error Starting Kernel';
  return new Set([english, Dialog.translator.load('jupyterlab').__(english)]);
}

function isKernelErrorDialog(node: HTMLElement, titles: Set<string>): boolean | null {
  const header = node.querySelector('.jp-Dialog-header');
  const text = header?.textContent?.trim() ?? '';
  if (!text) {
    return null; // not rendered yet
  }
  return titles.has(text);
}

/**
 * Mark JupyterLab's kernel-start error dialogs while ``wanted()`` (a pai-magic kernelspec is
 * installed). The header is a React widget rendered after the dialog is attached, so each
 * new dialog is observed until its header has text, then left alone. Returns the undoing.
 */
export function markKernelErrorDialogs(wanted: () => boolean): () => void {
  const onAdded = (_: unknown, dialog: Dialog<unknown>) => {
    if (!wanted()) {
      return;
    }
    const titles = kernelErrorTitles();
    const node = dialog.node;
    const check = (): boolean => {
      const found = isKernelErrorDialog(node, titles);
      if (found) {
        node.classList.add(START_ERROR_CLASS);
      }
      return found !== null;
    };
    if (check()) {
      return;
    }
    const observer = new MutationObserver(() => {
      if (check()) {
        observer.disconnect();
      }
    });
    observer.observe(node, { childList: true, subtree: true, characterData: true });
    dialog.disposed.connect(() => observer.disconnect());
  };
  Dialog.tracker.widgetAdded.connect(onAdded);
  return () => Dialog.tracker.widgetAdded.disconnect(onAdded);
}
