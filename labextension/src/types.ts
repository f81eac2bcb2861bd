/** Shapes of the server extension's answers (pai_magic/server/openapi.yaml). */

export interface IStatus {
  loggedIn: boolean;
  profile: string | null;
  url: string | null;
  user: string | null;
  virtualCluster: string | null;
  message: string | null;
}

export interface IJob {
  name: string;
  user: string;
  /** 'kernel', 'notebook' or null (pai_magic.core.kinds); older servers leave it out. */
  kind?: string | null;
  kindLabel?: string;
  /** The name without the kind's prefix (the kind label says it); older servers leave it out. */
  shortName?: string;
  state: string;
  virtualCluster: string | null;
  gpus: number;
  submissionTime: number | null;
  completedTime: number | null;
  exitCode: number | null;
  retries: number;
}

export interface ITask {
  role: string;
  index: number;
  state: string;
  containerIp: string | null;
  ports: { [name: string]: number[] };
  exitCode: number | null;
  diagnostics: string | null;
  retries?: number;
  attemptId?: number;
  /** The server's shell line into this task (its own pai-magic, its profile). */
  terminalCommand?: string | null;
}

export interface IJobDetail extends Omit<IJob, 'gpus'> {
  gpus: number | null;
  diagnostics: string | null;
  tasks: ITask[];
}

export interface IJobList {
  jobs: IJob[];
  total: number | null;
  offset?: number;
  limit?: number | null;
}

/** The submit form's fields: the spec keys pai_magic/server/submit.py accepts. */
export interface IJobSpec {
  name?: string;
  image: string;
  commands: string[];
  virtualCluster?: string;
  gpu?: number;
  cpu?: number;
  memoryMB?: number;
  instances?: number;
  retry?: number;
  ssh?: boolean;
  keepAlive?: boolean;
  storages?: string[];
}

export interface IJobConfig {
  name: string;
  user: string;
  yaml: string;
  spec: IJobSpec | null;
  specMessage: string | null;
}

export interface IProtocol {
  yaml: string;
  spec: IJobSpec | null;
  specMessage: string | null;
}

export interface IProfiles {
  active: string | null;
  profiles: { name: string; url: string; user: string | null; loggedIn: boolean }[];
}

export interface IImageList {
  registry: string;
  repositories: { repository: string; tags: string[] }[];
}

export interface IImageTag {
  tag: string;
  reference: string;
  digest: string | null;
  size: number | null;
  created: string | null;
  platforms: string[];
  error: string | null;
}

export interface IImageTags {
  registry: string;
  repository: string;
  tags: IImageTag[];
}

export interface IStorage {
  name: string;
  type: string;
  server: string | null;
  path: string | null;
  readOnly: boolean;
  default: boolean;
  mountPath: string;
  mountCommand: string | null;
  mounted: boolean;
  mountpoint: string | null;
  mountedBy: string | null;
  usage: {
    total: number | null;
    used: number | null;
    free: number | null;
    fractionUsed: number | null;
    warn: boolean;
    message: string;
  } | null;
}

/** GET jobs/<name>/notebook (the notebook-runs route): where the executed notebook is. */
export interface INotebookRun {
  path: string | null;
  /**
   * One line each about how the run was made that did not stop it (e.g. parameters set in a
   * new first cell of a notebook with no cell tagged `parameters`); older servers leave it out.
   */
  warnings?: string[];
  /** The files the notebook wrote that came back; `path` is null outside the Jupyter root. */
  outputs?: { name: string; path: string | null }[];
  /** One line about them: how many came back, what stayed in the task (over the limit). */
  outputs_message?: string;
}

export const JOB_STATES = [
  'WAITING',
  'RUNNING',
  'STOPPING',
  'SUCCEEDED',
  'FAILED',
  'STOPPED',
  'UNKNOWN'
];

export interface ISshInfo {
  name: string;
  state: string;
  hasSsh: boolean;
  lines: string[];
  text: string | null;
  message: string | null;
  waiting: string[];
  /** The lines with their task and kind (older servers leave it out). */
  commands?: ISshCommand[];
}

/** `portal`: the portal's command (your default key or agent); `key`: with pai_magic's -i key. */
export interface ISshCommand {
  task: string;
  kind: 'portal' | 'key';
  line: string;
}

export interface ILog {
  name: string;
  task: string;
  stream: string;
  text: string;
  truncated: boolean;
}

export const TERMINAL_STATES = new Set(['SUCCEEDED', 'FAILED', 'STOPPED']);

/** One phase of a kernel start (GET kernel-starts). */
export interface IKernelPhase {
  key: string;
  text: string;
  /** epoch milliseconds (the server's clock) */
  at: number;
}

/** One start (or restart) of a kernel on the cluster, as the provisioner recorded it. */
export interface IKernelStart {
  id: string;
  kernelId: string;
  kernelName: string;
  displayName: string;
  path: string | null;
  job: string | null;
  restart: boolean;
  /** 'ended': not a start but a running kernel whose job ended outside Jupyter (error: why). */
  state: 'starting' | 'ready' | 'failed' | 'ended';
  error: string | null;
  started: number;
  finished: number | null;
  phases: IKernelPhase[];
}

export interface IKernelStarts {
  version: number;
  /** The server's clock (epoch milliseconds), so elapsed times ignore the browser's clock. */
  now: number;
  starts: IKernelStart[];
}
