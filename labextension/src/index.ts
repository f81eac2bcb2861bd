/**
 * pai-magic: a left sidebar to log into an OpenPAI cluster (or the embedded local
 * backend), follow jobs, stop them and copy SSH commands, all through the pai_magic
 * server extension, so it works with no kernel running.
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ISettingRegistry } from '@jupyterlab/settingregistry';

import { paiIcon } from './icon';
import { ISidebarOptions, PaiSidebar } from './sidebar';

const PLUGIN_ID = 'pai-magic:sidebar';

function readOptions(settings: ISettingRegistry.ISettings): ISidebarOptions {
  return {
    refreshInterval: settings.get('refreshInterval').composite as number,
    jobLimit: settings.get('jobLimit').composite as number
  };
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

export default plugin;
