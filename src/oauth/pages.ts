import type { AuthorizationRequest } from './authorization-request';
import type { OAuthClient } from './clients';

/**
 * The only HTML the broker serves: an error page and the organisation page. Every interpolated value is
 * escaped; the headers the route adds (CSP without scripts, no framing, no referrer, no caching) keep
 * these pages inert. The organisation page never lists tenants: the person types theirs.
 */

const escape = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function layout(title: string, body: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>${escape(title)}</title></head><body><main><h1>${escape(title)}</h1>${body}</main></body></html>\n`;
}

export function messagePage(title: string, message: string): string {
  return layout(title, `<p>${escape(message)}</p>`);
}

/** Resubmits the authorization request unchanged, plus what the person typed, to /authorize. */
export function organizationPage(action: string, request: AuthorizationRequest, client: OAuthClient, unknown: boolean): string {
  const hidden: Array<[string, string | undefined]> = [
    ['client_id', request.clientId],
    ['redirect_uri', request.redirectUri],
    ['response_type', request.responseType],
    ['code_challenge', request.codeChallenge],
    ['code_challenge_method', request.codeChallengeMethod],
    ['resource', request.resource],
    ['scope', request.scope],
    ['state', request.state],
  ];
  const fields = hidden
    .filter((entry): entry is [string, string] => entry[1] !== undefined)
    .map(([name, value]) => `<input type="hidden" name="${escape(name)}" value="${escape(value)}">`)
    .join('');
  const who = client.name ?? client.clientId;
  const notice = unknown ? '<p role="alert">No organisation by that name signs in here.</p>' : '';
  return layout(
    'Sign in with your organisation',
    `<p>${escape(who)} wants to use tools on your organisation's behalf.</p>${notice}<form method="get" action="${escape(action)}">${fields}<label>Organisation or work email <input name="organization" autocomplete="email" required maxlength="256"></label> <button type="submit">Continue</button></form>`,
  );
}
