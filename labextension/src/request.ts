/**
 * Every call of the sidebar goes through requestAPI, joined onto the server's baseUrl so
 * that it works behind JupyterHub's /user/<name>/ prefix, with the XSRF and token
 * headers ServerConnection adds.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** The one-line message the server extension put in {"error": ...}, with its status. */
export class PaiRequestError extends Error {
  constructor(
    message: string,
    readonly status: number,
    /** The OpenPAI error code the server passed on (NoTaskLogError ...), if any. */
    readonly code: string | null = null,
    /** The form field the message is about (spec key or query argument), if any. */
    readonly field: string | null = null
  ) {
    super(message);
    this.name = 'PaiRequestError';
  }
}

export async function requestAPI<T>(
  endPoint = '',
  init: RequestInit = {}
): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'pai-magic', 'api', endPoint);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new PaiRequestError(
      'The Jupyter server did not answer; check that it is still running.',
      0
    );
  }
  const text = await response.text();
  let data: any = null;
  if (text.length > 0) {
    try {
      data = JSON.parse(text);
    } catch (error) {
      data = null;
    }
  }
  if (!response.ok) {
    const message =
      data && typeof data.error === 'string'
        ? data.error
        : `The pai_magic server extension answered ${response.status}; is it enabled (jupyter server extension list)?`;
    const code = data && typeof data.code === 'string' ? data.code : null;
    const field = data && typeof data.field === 'string' ? data.field : null;
    throw new PaiRequestError(message, response.status, code, field);
  }
  return data as T;
}

/** A JSON POST. */
export function postAPI<T>(endPoint: string, body: unknown): Promise<T> {
  return requestAPI<T>(endPoint, {
    method: 'POST',
    body: JSON.stringify(body ?? {}),
    headers: { 'Content-Type': 'application/json' }
  });
}
