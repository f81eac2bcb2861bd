/**
 * pai-magic: a left sidebar to log into an OpenPAI cluster (or the embedded local
 * backend), find and follow jobs, stop and clone them, submit new ones, browse the
 * registry's images and the cluster's storages, all through the pai_magic server
 * extension, so it works with no kernel running. A task's shell opens in a JupyterLab
 * terminal running the CLI's `pai-magic ssh`. A second plugin shows the start phases of
 * kernels that run in OpenPAI jobs as notifications.
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ISettingRegistry } from '@jupyterlab/settingregistry';

import { paiIcon } from './icon';
import { KernelStartNotifier } from './kernelstarts';
import { markKernelErrorDialogs } from './starterror';
import { ISidebarOptions, PaiSidebar } from './sidebar';

const PLUGIN_ID = 'pai-magic:sidebar';

function readOptions(settings: ISettingRegistry.ISettings): ISidebarOptions {
  return {
    refreshInterval: settings.get('refreshInterval').composite as number,
    jobLimit: settings.get('jobLimit').composite as number
  };
}

/**
 * A new JupyterLab terminal with `command` typed into it (the terminal plugin's own
 * command makes it, so it is tracked, restored and themed like any other terminal).
 */
async function openTerminal(app: JupyterFrontEnd, command: string): Promise<void> {
  if (!app.commands.hasCommand('terminal:create-new')) {
    throw new Error(
      `This JupyterLab has no terminals (is jupyter_server_terminals installed?): run ${command} in a shell.`
    );
  }
  const widget: any = await app.commands.execute('terminal:create-new');
  const session = widget?.content?.session;
  if (!session) {
    return;
  }
  const send = () => session.send({ type: 'stdin', content: [`${command}\r`] });
  if (session.connectionStatus === 'connected') {
    send();
    return;
  }
  const onStatus = (_: unknown, status: string) => {
    if (status === 'connected') {
      session.connectionStatusChanged.disconnect(onStatus);
      send();
    }
  };
  session.connectionStatusChanged.connect(onStatus);
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'OpenPAI jobs sidebar (pai_magic).',
  autoStart: true,
  optional: [ILayoutRestorer, ISettingRegistry],
  activate: async (
    app: JupyterFrontEnd,
    restorer: ILayoutRestorer | null,
    registry: ISettingRegistry | null
  ) => {
    let options: ISidebarOptions = {};
    let settings: ISettingRegistry.ISettings | null = null;
    if (registry) {
      try {
        settings = await registry.load(PLUGIN_ID);
        options = readOptions(settings);
      } catch (error) {
        console.warn('pai-magic: settings not loaded, using defaults', error);
      }
    }
    options.openTerminal = (command: string) => openTerminal(app, command);
    options.openFile = (path: string) =>
      void app.commands.execute('docmanager:open', { path });
    const sidebar = new PaiSidebar(options);
    sidebar.title.icon = paiIcon;
    app.shell.add(sidebar, 'left', { rank: 850 });
    if (restorer) {
      restorer.add(sidebar, sidebar.id);
    }
    if (settings) {
      settings.changed.connect(() => sidebar.configure(readOptions(settings!)));
    }
  }
};

/**
 * A notification per kernel start on the cluster (submitted, waiting, running, ready), and a
 * failed start's reason wrapped in JupyterLab's own error dialog.
 */
const kernelStarts: JupyterFrontEndPlugin<void> = {
  id: 'pai-magic:kernel-starts',
  description: 'Notifications with the start phases of kernels that run in OpenPAI jobs.',
  autoStart: true,
  activate: (app: JupyterFrontEnd) => {
    const notifier = new KernelStartNotifier(app.serviceManager.kernelspecs);
    // JupyterLab's own "Error Starting Kernel" dialog: wrap the reason (see starterror.ts)
    markKernelErrorDialogs(() => notifier.isFollowing);
  }
};

export default [plugin, kernelStarts];
