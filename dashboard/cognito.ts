/**
 * Sign-in for the dashboard deployed on AWS (docs/dashboard.md, "On AWS"): the Cognito hosted
 * UI with the authorization code flow and PKCE (a public client: no secret in the page). The
 * stack writes `/config.json` next to the UI; tokens stay in sessionStorage (this tab only) and
 * the ID token is sent as `Authorization: Bearer`, which API Gateway's JWT authorizer verifies.
 */
import { z } from "zod";

const CognitoConfig = z.object({
  auth: z.literal("cognito"),
  region: z.string(),
  clientId: z.string().min(1),
  /** `https://<prefix>.auth.<region>.amazoncognito.com` */
  domain: z.string().url(),
  scopes: z.array(z.string()),
});
type CognitoConfig = z.infer<typeof CognitoConfig>;

const TokenResponse = z.object({
  id_token: z.string(),
  expires_in: z.number(),
  refresh_token: z.string().optional(),
});

const KEY = {
  verifier: "spawn.pkce",
  state: "spawn.state",
  hash: "spawn.hash",
  tokens: "spawn.tokens",
} as const;
const Stored = z.object({ idToken: z.string(), expiresAt: z.number(), refreshToken: z.string().optional() });

const base64url = (bytes: Uint8Array) =>
  btoa(String.fromCharCode(...bytes))
    .replace(/\+/g, "-")
    .replace(/\//g, "_")
    .replace(/=+$/, "");
const randomText = () => base64url(crypto.getRandomValues(new Uint8Array(32)));
const redirectUri = () => `${location.origin}/`;

async function loadConfig(): Promise<CognitoConfig> {
  const response = await fetch("/config.json", { cache: "no-store" });
  if (!response.ok)
    throw new Error(`the dashboard's /config.json is missing (HTTP ${response.status}): redeploy the stack`);
  return CognitoConfig.parse(await response.json());
}

/** Sends the browser to the hosted UI; the page comes back to `/?code=…&state=…`. */
async function redirectToSignIn(config: CognitoConfig): Promise<never> {
  const verifier = randomText();
  const state = randomText();
  sessionStorage.setItem(KEY.verifier, verifier);
  sessionStorage.setItem(KEY.state, state);
  sessionStorage.setItem(KEY.hash, location.hash);
  const challenge = base64url(
    new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier))),
  );
  const query = new URLSearchParams({
    response_type: "code",
    client_id: config.clientId,
    redirect_uri: redirectUri(),
    scope: config.scopes.join(" "),
    state,
    code_challenge_method: "S256",
    code_challenge: challenge,
  });
  location.assign(`${config.domain}/oauth2/authorize?${query}`);
  return new Promise<never>(() => undefined);
}

async function exchange(config: CognitoConfig, grant: Record<string, string>): Promise<string> {
  const response = await fetch(`${config.domain}/oauth2/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ client_id: config.clientId, ...grant }),
  });
  if (!response.ok) throw new Error(`sign-in failed at the token endpoint (HTTP ${response.status})`);
  const tokens = TokenResponse.parse(await response.json());
  const refreshToken = tokens.refresh_token ?? grant.refresh_token;
  sessionStorage.setItem(
    KEY.tokens,
    JSON.stringify({
      idToken: tokens.id_token,
      expiresAt: Date.now() + tokens.expires_in * 1000,
      ...(refreshToken ? { refreshToken } : {}),
    }),
  );
  return tokens.id_token;
}

/**
 * A valid ID token: the stored one, a refreshed one, the one this page load's `?code=` is
 * exchanged for, or (never resolving) a redirect to the hosted UI.
 */
export async function cognitoIdToken(options: { renew?: boolean } = {}): Promise<string> {
  const config = await loadConfig();
  const params = new URLSearchParams(location.search);
  const code = params.get("code");
  if (code) {
    const expected = sessionStorage.getItem(KEY.state);
    const verifier = sessionStorage.getItem(KEY.verifier);
    sessionStorage.removeItem(KEY.state);
    sessionStorage.removeItem(KEY.verifier);
    // Drop ?code= from the address bar and history; go back to the page the user was on.
    history.replaceState(null, "", `/${sessionStorage.getItem(KEY.hash) ?? ""}`);
    // replaceState fires no hashchange: tell the router the page it was sent back to.
    if (location.hash) window.dispatchEvent(new HashChangeEvent("hashchange"));
    if (!expected || params.get("state") !== expected || !verifier) return redirectToSignIn(config);
    return exchange(config, {
      grant_type: "authorization_code",
      code,
      redirect_uri: redirectUri(),
      code_verifier: verifier,
    });
  }
  const stored = Stored.safeParse(JSON.parse(sessionStorage.getItem(KEY.tokens) ?? "null"));
  if (stored.success && !options.renew && stored.data.expiresAt - Date.now() > 60_000)
    return stored.data.idToken;
  if (stored.success && stored.data.refreshToken) {
    try {
      return await exchange(config, { grant_type: "refresh_token", refresh_token: stored.data.refreshToken });
    } catch {
      // fall through to a new sign-in
    }
  }
  sessionStorage.removeItem(KEY.tokens);
  return redirectToSignIn(config);
}
