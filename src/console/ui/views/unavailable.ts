import { ApiError } from '../api';
import { h } from '../dom';

/**
 * A panel fed by an endpoint this broker may not have yet: a 404 naming a missing endpoint is shown
 * as "not available on this broker", any other failure as the error it is.
 */
export async function optionalPanel<T>(title: string, load: () => Promise<T>, render: (data: T) => Node): Promise<HTMLElement> {
  const section = h('section', { class: 'card', 'aria-label': title }, h('h2', {}, title));
  try {
    section.append(render(await load()));
  } catch (err) {
    if (err instanceof ApiError && err.unavailable) section.append(h('p', { class: 'muted', 'data-unavailable': 'true' }, 'Not available on this broker.'));
    else section.append(h('p', { class: 'error' }, `Could not load: ${(err as Error).message}`));
  }
  return section;
}
