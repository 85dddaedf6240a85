/*! tippen-rt tracker: TypeScript declarations for window.tippen, docs/tracker.md */
// The public API of tippen-app-tracker.js once it has loaded. Before it loads,
// window.tippen may be the stub ({q: [...]}, see TippenStub), whose calls are
// replayed in order. A test checks this file against the real script's API
// (tests/browser/test_tracker_privacy.py).

/** The tiers the service takes; anything else is sent as "free_trial". */
export type TippenTier = "free_trial" | "paid" | "enterprise";

/** Who the signed-in user is; what an object leaves out stays as it was. */
export interface TippenUser {
  /** Your id for the user, at most 256 characters. */
  id?: string;
  email?: string;
  tier?: TippenTier;
  /** HMAC-SHA256 of id with the tenant's identity secret, 64 hex digits. */
  hash?: string;
  /** The display name, shown to support staff as "Name (email)". */
  name?: string;
}

/** A video call invitation, as `tippen.on('invite', fn)` hands it over. */
export interface TippenInvite {
  /** The call's id. */
  id: number;
  /** The support agent who calls. */
  agent: string;
  /** The room the agent is in. */
  url: string;
  /** When the invitation lapses (ms since the epoch). */
  expiresAt: number;
  /** Opens url in a new tab and says so; call it from a click. */
  join(): void;
  /** Says "not now". */
  decline(): void;
}

/** What the stub queue holds: a method name, then its arguments. */
export type TippenCommand = [name: string, ...args: unknown[]];

/** window.tippen before the tracker has loaded. */
export interface TippenStub {
  q: TippenCommand[];
}

/** window.tippen once the tracker has loaded. */
export interface Tippen {
  /** 1 once the tracker has loaded. */
  readonly loaded: 1;
  /** A custom event: name at most 256 characters, data at most 8 KiB as JSON. */
  track(name: string, data?: unknown): void;
  /** Names the signed-in user, or switches to another. */
  identify(
    userId: string,
    email?: string,
    tier?: TippenTier,
    userHash?: string,
    name?: string,
  ): void;
  identify(user: TippenUser): void;
  /** Sends what is waiting now. */
  flush(): void;
  /** Consent: tracking starts now (also under Do-Not-Track, Global Privacy
   * Control or data-tippen-require-consent) and the choice is remembered. */
  optIn(): void;
  /** Stops tracking in this browser, drops what waits, remembers the choice. */
  optOut(): void;
  /** True while nothing is sent: opted out, no consent yet, or DNT/GPC. */
  hasOptedOut(): boolean;
  /** Shows call invitations with your own UI instead of the built-in dialog. */
  on(event: "invite", handler: (invite: TippenInvite) => void): void;
  /** The stub's queue, replaced: a push runs the command at once. */
  q: { push(command: TippenCommand): void };

  // Below: shared with tippen-invite.js only, not for apps.
  /** @internal the ingest endpoint */
  readonly e: string;
  /** @internal the head of every batch: who the user is */
  u(): Record<string, unknown>;
  /** @internal the app's handlers, by event name */
  readonly h: Record<string, Array<(value: unknown) => void>>;
  /** @internal tippen-invite.js's poll, once it is asked for */
  p?: () => void;
  /** @internal 1 once tippen-invite.js has loaded */
  invite?: 1;
}

declare global {
  interface Window {
    tippen?: Tippen | TippenStub;
  }
}
