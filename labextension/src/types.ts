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
}

export interface IJobDetail extends Omit<IJob, 'gpus'> {
  gpus: number | null;
  diagnostics: string | null;
  tasks: ITask[];
}

export interface IJobList {
  jobs: IJob[];
  total: number | null;
}

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
