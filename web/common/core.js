// What both web faces share: words in two languages, money, the API with its token, and the
// live socket. A client of the public API (/api/v1) and its WebSocket, nothing more.
// The access token lives in memory only; the refresh token is the httpOnly cookie.

// ---- Words ---------------------------------------------------------------------------------

// The order statuses of API.md, which both faces show; each face adds its own words.
const words = {
  en: {
    st_awaiting_payment: "Awaiting payment", st_paid: "Paid", st_preparing: "Preparing", st_shipped: "Shipped",
    st_delivered: "Delivered", st_cancelled: "Cancelled", st_payment_failed: "Payment failed", st_expired: "Expired",
    st_return_requested: "Return requested", st_returned: "Returned", st_refunded: "Refunded",
    session_changed: "Another account was signed in from another tab, so nothing was done. The page now shows that account.",
    logout_failed: "Couldn't log out: no answer from the server. Check the connection and try again.",
  },
  ko: {
    st_awaiting_payment: "결제 대기", st_paid: "결제 완료", st_preparing: "상품 준비 중", st_shipped: "배송 중",
    st_delivered: "배송 완료", st_cancelled: "주문 취소", st_payment_failed: "결제 실패", st_expired: "기한 만료",
    st_return_requested: "반품 요청", st_returned: "반품 완료", st_refunded: "환불 완료",
    session_changed: "다른 탭에서 다른 계정으로 로그인되어 요청을 처리하지 않았습니다. 이제 그 계정으로 표시됩니다.",
    logout_failed: "서버가 응답하지 않아 로그아웃하지 못했습니다. 연결을 확인하고 다시 시도해 주세요.",
  },
};
/** The browser's `localStorage` (`local`) or this tab's `sessionStorage` (`tabStore`), which
 * may refuse the page: with the site's data blocked every access throws. Then nothing is kept
 * and a read finds nothing: the pages work for as long as they are open. */
const storage = (area) => ({
  get(key) { try { return window[area].getItem(key); } catch { return null; } },
  set(key, value) { try { window[area].setItem(key, value); } catch { /* not kept */ } },
  remove(key) { try { window[area].removeItem(key); } catch { /* nothing kept */ } },
});
export const local = storage("localStorage");
export const tabStore = storage("sessionStorage");

/** `fn()` under the browser-wide Web Lock `name` where the browser has them. With the site's
 * data blocked the browser refuses locks (`SecurityError`): `fn` then runs in this tab's turn
 * alone. Any other refusal, or `fn`'s own failure, is thrown. */
export async function locked(name, fn) {
  if (!navigator.locks) return fn();
  let ran = false;
  try {
    return await navigator.locks.request(name, () => { ran = true; return fn(); });
  } catch (err) {
    if (ran || err?.name !== "SecurityError") throw err;
    return fn();
  }
}

/** Whether the browser refuses this site's cookies (a session then lasts as long as its page).
 * `navigator.cookieEnabled` stays true when only this site is blocked: a cookie is tried. */
export function cookiesRefused() {
  if (!navigator.cookieEnabled) return true;
  document.cookie = "cookie_probe=1; path=/; SameSite=Strict";
  const refused = !document.cookie.includes("cookie_probe=1");
  document.cookie = "cookie_probe=; path=/; max-age=0";
  return refused;
}

export let lang = local.get("lang");
if (!(lang in words)) lang = (navigator.language || "en").toLowerCase().startsWith("ko") ? "ko" : "en";

/** Adds a face's catalogue: `{en: {key: text}, ko: {...}}`. */
export const addWords = (more) => { for (const l in words) Object.assign(words[l], more[l]); };
export const t = (key, vars = {}) =>
  (words[lang][key] ?? words.en[key] ?? key).replace(/\{(\w+)\}/g, (_, k) => vars[k] ?? "");
export const known = (key) => key in words.en;
export const switchLang = () => { lang = lang === "ko" ? "en" : "ko"; local.set("lang", lang); };
/** The `#lang` button (at the page's foot): the shell and the page painted again in the other
 * language, where the reader was, the focus left on the button. */
export const langButton = (paintShell, route) => $("#lang").addEventListener("click", async () => {
  const y = scrollY;
  switchLang(); paintShell();
  await route({ focus: false });
  scrollTo(0, y);
  // (The footer is hidden while the page is painted again, which drops the focus it held.)
  refocus($("#lang"));
});

// Amounts are integer minor units of the store currency (API.md): ₩12,900 is 12900, $1.50 is 150.
export const money = (amount, currency = "KRW") => {
  const format = new Intl.NumberFormat(lang === "ko" ? "ko-KR" : "en-US", { style: "currency", currency });
  return format.format(amount / 10 ** format.resolvedOptions().maximumFractionDigits);
};
export const when = (iso) => new Date(iso).toLocaleString(lang === "ko" ? "ko-KR" : "en-US",
  { dateStyle: "medium", timeStyle: "short" });
/** `ms` as `[Nd ]hh:mm:ss`. */
export const span = (ms) => {
  const s = Math.max(0, Math.round(ms / 1000));
  const [d, h, m, sec] = [Math.floor(s / 86400), Math.floor(s / 3600) % 24, Math.floor(s / 60) % 60, s % 60];
  return (d ? `${d}d ` : "") + [h, m, sec].map((n) => String(n).padStart(2, "0")).join(":");
};
export const $ = (sel, root = document) => root.querySelector(sel);
/** A form's fields by name, trimmed; passwords and tokens as typed. */
export const fields = (form) => Object.fromEntries([...new FormData(form)].map(([k, v]) =>
  [k, ["password", "token"].includes(k) ? String(v) : String(v).trim()]));

/** The words both faces' shells share: the page's language, every `data-t` element, the
 * language switch (`#lang`, naming the other language), and the `#auth` link with the
 * `data-signed-in` elements. */
export function paintWords() {
  document.documentElement.lang = lang;
  for (const el of document.querySelectorAll("[data-t]")) el.textContent = t(el.dataset.t);
  $("#lang").textContent = lang === "ko" ? "English" : "한국어";
  $("#lang").lang = lang === "ko" ? "en" : "ko";
}
export function paintSignedIn() {
  const a = $("#auth");
  a.textContent = t(session.token ? "logout" : "login");
  a.setAttribute("href", session.token ? "#/logout" : "#/login");
  for (const el of document.querySelectorAll("[data-signed-in]")) el.hidden = !session.token;
}
export const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
export const enc = encodeURIComponent;
/** A random key (Idempotency-Key, client message id): `crypto.randomUUID` where the page is a
 * secure context, else the same shape from `crypto.getRandomValues` (plain HTTP on a LAN). */
export const uuid = () => crypto.randomUUID?.() ??
  "10000000-1000-4000-8000-100000000000".replace(/[018]/g, (c) =>
    (c ^ (crypto.getRandomValues(new Uint8Array(1))[0] & (15 >> (c / 4)))).toString(16));

/** Shows `text` for five seconds at the foot of the page. What an action says replaces what
 * the last action said; a `notice` (a notification arriving) stands beside them, at most three
 * lines in all, the oldest giving way. The same text again replaces its earlier line. A screen
 * reader hears each new line once (`#toast` announces additions only). */
export const say = (text, { notice = false } = {}) => {
  const box = $("#toast");
  for (const old of [...box.children]) {
    if (old.textContent === text || (!notice && !old.dataset.notice)) old.remove();
  }
  const line = document.createElement("p");
  line.textContent = text;
  if (notice) line.dataset.notice = "1";
  box.append(line);
  while (box.children.length > 3) box.firstElementChild.remove();
  setTimeout(() => line.remove(), 5000);
};
/** Writes `text` into the page's element `sel` (under the page's `root`); said in a toast
 * instead when that page has been drawn again meanwhile (a language switch, another account),
 * so an answer is never written where no one sees it. */
export const tell = (root, sel, text) => {
  const el = $(sel, root);
  if (el && root.isConnected) el.textContent = text;
  else say(text);
};
/** An API error in a shopper's words: its code's text, else by status. */
export const problem = (e) => {
  if (e.code && known(e.code)) {
    if (!e.reason) return t(e.code);
    return `${t(e.code)} ${known(`reason_${e.reason}`) ? t(`reason_${e.reason}`) : `(${e.reason})`}`;
  }
  if (e.status === undefined) return t("offline");
  // The session ended (revoked, or its refresh refused): what to do, not the server's words.
  if (e.status === 401) return t("need_login");
  // (an id that cannot name anything, `400 invalid_id`, is as good as not found)
  if (e.status === 404 || e.code === "invalid_id") return t("not_found");
  if (e.status === 403) return t("forbidden");
  return e.detail ? `${t("error")} (${e.detail})` : t("error");
};

// ---- The API -------------------------------------------------------------------------------

/** The signed-in user, if any; `onLost` runs when the session ends on its own, `onChange` when
 * another tab logged in or out. */
export const session = { token: null, user: null, roles: [], pasted: false, onLost: () => {}, onChange: () => {} };

/** A JWT's claims (`sub`, `roles`, `exp`), read without checking (the server checks); `{}`
 * for anything else, such as a pasted operator token. */
export const claims = (jwt) => {
  try { return JSON.parse(atob(jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/"))); } catch { return {}; }
};
/** Whether `jwt` expires within 5 s: refreshed before a use the server would refuse. */
const expiring = (jwt) => claims(jwt).exp * 1000 < Date.now() + 5000;
/** Whether a refresh cookie may exist (it is httpOnly, so unreadable): a visitor who never
 * logged in is not sent to a refresh that can only fail. */
const cookieFlag = {
  get: () => local.get("session") === "1",
  set: (on) => (on ? local.set("session", "1") : local.remove("session")),
};

// Tabs share each new access token (in memory only: a channel, not storage), so one refresh
// serves them all; the rotating refresh token must never be sent twice.
const tabs = "BroadcastChannel" in window ? new BroadcastChannel("emporium-token") : null;
let renewal = null;

/** Keeps a new access token (or none): its user and roles, a refresh a minute before it
 * expires, the live socket signed in as it (a socket stays with its first user, so another
 * user gets a new socket). `cookie: false` for a pasted token that has no refresh cookie. */
export function keep(token, { cookie = true, share = true } = {}) {
  const c = token ? claims(token) : {};
  const before = session.user;
  session.token = token;
  session.pasted = Boolean(token) && !cookie;
  session.user = c.sub ?? null;
  session.roles = [c.roles ?? []].flat();
  clearTimeout(renewal);
  if (token && cookie && c.exp) renewal = setTimeout(() => refresh().catch(() => {}), Math.max(0, c.exp * 1000 - Date.now() - 60000));
  if (cookie) cookieFlag.set(Boolean(token));
  if (share) tabs?.postMessage(token);
  if (before && before !== session.user) live.ws?.close();
  else if (token) live.send({ type: "auth", access_token: token });
}
// A renewed token changes nothing on screen; another user, or none, does.
if (tabs) tabs.onmessage = (e) => {
  // A pasted token (the console's operator token) is this tab's alone: the shop's tokens do
  // not replace it.
  if (session.pasted) return;
  const before = session.user;
  keep(e.data, { share: false });
  if (session.user !== before) session.onChange();
};

// One refresh at a time, across the tabs of this browser where it can (Web Locks: each refresh
// then sends the cookie the previous one rotated, never a spent one), and in this tab always.
let refreshing = null;

// A refresh outlives its page (`keepalive`, below), but a page gone takes its lock with it, and
// the answer's cookie lands after: a page loaded meanwhile (a second quick reload, a slow
// server) would send the spent cookie and end the session (`refresh_reused`). So each refresh
// notes in the browser's storage when it left and the tag it left with (`refresh_tag`, the one
// cookie of the session a page can read, new with each refresh cookie), and clears its note when
// answered. A refresh or log-in that finds a note waits until the tag changes (the answer has
// landed) or the note is older than any answer worth waiting for. Storage that fails (full,
// blocked) only loses the note.
const refreshTag = () => document.cookie.split("; ").find((c) => c.startsWith("refresh_tag="))?.slice(12) ?? "";
const onTheWire = {
  key: "refreshing", longest: 15000,
  read() {
    try {
      const note = JSON.parse(local.get(this.key));
      return Number.isFinite(note?.at) ? note : null;
    } catch { return null; }
  },
  /** Notes a refresh leaving now; its id, for `clear`. */
  mark() {
    const id = Math.random();
    local.set(this.key, JSON.stringify({ at: Date.now(), tag: refreshTag(), id }));
    return id;
  },
  /** Removes the note of refresh `id`, not another's. */
  clear(id) {
    if (this.read()?.id === id) local.remove(this.key);
  },
  async landed() {
    for (;;) {
      const note = this.read();
      const age = note ? Date.now() - note.at : -1;
      if (!note || refreshTag() !== note.tag || !(age >= 0 && age <= this.longest)) return;
      await new Promise((r) => setTimeout(r, 100));
    }
  },
};
/** `POST /auth/login` with `email` and `password`, in turn with the refreshes (their lock, and
 * after any refresh a page since gone left on the wire), so no refresh's answer lands after it
 * and replaces the new session's cookie. The new session is kept, and shared with the other
 * tabs, before the lock is let go: a log-out waiting in another tab then sees it. `refuse(token)`
 * may return an Error instead, for a session this page does not take (the console: a
 * shopper's); that session is ended at once, still in the lock (the log-in has set this
 * browser's cookie to it, and the shop's tabs would become that account at their next
 * refresh), and the Error thrown. Its 401 is the credentials', never a reason to refresh. The
 * answer's body, or throws as [`api`] does. */
export function logIn(email, password, refuse = () => null) {
  const send = async () => {
    await onTheWire.landed();
    const r = await api("/auth/login", { method: "POST", body: { email, password }, again: false, bearer: false });
    const refused = refuse(r.access_token);
    if (refused) {
      if (!await endSession(r.access_token)) say(t("logout_failed"));
      throw refused;
    }
    keep(r.access_token);
    return r;
  };
  return locked("emporium-refresh", send);
}

/** `POST /auth/logout` with `token`, given up after 10 s: whether the session is over (ended,
 * or already ended: 401). A pasted token's log-out sends no cookie and takes none, so the
 * shop's session in this browser is left alone. */
async function endSession(token, { pasted = false } = {}) {
  const r = await fetch("/api/v1/auth/logout", {
    method: "POST", headers: { authorization: `Bearer ${token}` },
    credentials: pasted ? "omit" : "same-origin", signal: AbortSignal.timeout?.(10000),
  }).catch(() => null);
  return Boolean(r && (r.ok || r.status === 401));
}

/** Ends the session shown: `POST /auth/logout`, then no token in any tab (a pasted token: in
 * this tab only; the operator token, a setting, is only forgotten). In turn with log-ins and
 * refreshes (their lock): a log-in made meanwhile in another tab is neither ended by this one's
 * late answer nor logged out in its place. True when the session shown ended, false when it
 * could not be (no answer: said) or another account had signed in since it was asked (then
 * this tab holds that account's session, if it is still there). */
export function logOut() {
  // One at a time: a page drawn again while one runs (another tab's log-in heard) and still
  // at `#/logout` gets this one's outcome instead of logging out the account it now shows.
  loggingOut ??= endShown().finally(() => { loggingOut = null; });
  return loggingOut;
}
let loggingOut = null;
function endShown() {
  const who = session.user;
  const send = async () => {
    if (session.user !== who) return false;
    const { pasted } = session;
    if (!session.token) return true;
    if (pasted) {
      if (claims(session.token).sub && !await endSession(session.token, { pasted })) {
        say(t("logout_failed"));
        return false;
      }
      keep(null, { cookie: false, share: false });
      return true;
    }
    // An expired token's log-out would be refused (401) and leave its session alive: a fresh
    // one first (in the lock already, so the trade itself).
    if (expiring(session.token)) {
      try { await trade(session.token); } catch { say(t("logout_failed")); return false; }
      if (!session.token) return true; // (refused: the session was over, and said so to all)
      // The cookie was another account's (a log-in this tab did not hear): not its to end.
      if (session.user !== who) return false;
    }
    if (!await endSession(session.token)) { say(t("logout_failed")); return false; }
    // The server clears the cookie (and its tag) of the session it ended only: a tag left is
    // another session's, a log-in in another tab this one has not heard of yet. This tab
    // leaves the ended session and takes that one, without telling the others to sign out.
    if (refreshTag()) { keep(null, { share: false }); cookieFlag.set(true); return "another"; }
    keep(null);
    return true;
  };
  const ended = locked("emporium-refresh", send);
  // Then that session's refresh (tried again in the background if it gets no answer). The
  // caller draws the page for it: drawn again here, a `#/logout` page would log it out too.
  return ended.then(async (outcome) => {
    if (outcome !== "another") return outcome;
    await resume();
    return false;
  });
}

/** Whether a page-start refresh that failed is worth trying again: no answer, or a busy one. */
const transient = (err) => err.status === undefined || [429, 502, 503, 504].includes(err.status);

/** Signs the browser's session back in at a page's start: a refresh, tried again in the
 * background, with backoff and jitter, while it fails without an answer or with a busy one (no
 * connection, `429`, `502`-`504`), and the page painted again ([`session.onChange`]) once one
 * brings the session back. One failed try must not show a shopper whose session is fine as
 * signed out for good. */
export async function resume(delay = 1000) {
  try {
    return await refresh();
  } catch (err) {
    if (!transient(err)) return false;
    const wait = Math.max(delay, (err.retryAfter ?? 1) * 1000) * (1 + Math.random() / 2);
    setTimeout(async () => { if (!session.token && await resume(Math.min(delay * 2, 30000))) session.onChange(); }, wait);
    return false;
  }
}

/** The trade itself, run in the refreshes' lock; `had`, the token the caller knew. */
async function trade(had) {
  await onTheWire.landed();
  // Another tab may have refreshed, or logged out, while this one waited.
  if (session.token && session.token !== had) return true;
  if (!cookieFlag.get()) return false;
  // `keepalive`: a reload or a link followed while the refresh is on the wire must not cancel
  // it. The server has rotated the cookie by then; cancelled, the new one would never reach
  // the cookie jar, the next load would send the spent one, and a refresh token used twice
  // ends the session (API.md).
  const note = onTheWire.mark();
  const r = await fetch("/api/v1/auth/refresh", { method: "POST", credentials: "same-origin", keepalive: true })
    .finally(() => onTheWire.clear(note));
  if (r.ok) {
    const token = (await r.json()).access_token;
    // A token pasted meanwhile (the console) stays this tab's: the shop's tabs get theirs.
    if (session.pasted) { tabs?.postMessage(token); return true; }
    const before = session.user;
    keep(token);
    // Another account's token (its log-in came from a tab this one did not hear, and the
    // cookie is shared): the page is painted again for it, whichever refresh found out.
    if (before && session.user !== before) session.onChange();
    return true;
  }
  if (r.status === 401) {
    if (!session.pasted) keep(null);
    else { cookieFlag.set(false); tabs?.postMessage(null); } // (the shop's session is over)
    return false;
  }
  throw Object.assign(new Error("refresh"), { status: r.status, retryAfter: Number(r.headers.get("retry-after")) || 1 });
}

/** Trades the refresh cookie for a new access token: `true` with one, `false` when the session
 * is over (401: logged out), or throws (no connection, busy) leaving the session to retry. */
export function refresh() {
  if (!cookieFlag.get()) return Promise.resolve(false);
  const had = session.token;
  // The wait for a note comes first outside the lock too, so a hidden tab, whose timers the
  // browser slows, does not hold the lock while it waits.
  const turn = () => locked("emporium-refresh", () => trade(had));
  refreshing ??= onTheWire.landed().then(turn).finally(() => { refreshing = null; });
  return refreshing;
}

/** The error of an action stopped because another account signed in since it began; said at
 * once, as the page that started it has been painted again for that account. */
const sessionChanged = () => {
  say(t("session_changed"));
  return Object.assign(new Error("session_changed"), { status: 401, code: "session_changed" });
};

/** Calls `/api/v1{path}`; the JSON body, or throws an Error with `status`, `code`, `reason`,
 * `detail` and `retryAfter` (seconds). A 401 refreshes once, then asks to log in again
 * (`again: false`: neither). `bearer: false` sends no token (a log-in); `signal` aborts it. */
export async function api(path, { method = "GET", body, headers = {}, again = true, bearer = true, signal } = {}) {
  const h = { ...headers };
  if (body !== undefined) h["content-type"] = "application/json";
  const sent = bearer && Boolean(session.token);
  if (sent) h.authorization = `Bearer ${session.token}`;
  const user = session.user;
  const r = await fetch(`/api/v1${path}`, {
    method, headers: h, credentials: "same-origin", signal,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  // A pasted token (the console's operator token) has no refresh: it ends here.
  if (r.status === 401 && sent && again && !session.pasted) {
    if (await refresh()) {
      if (session.user === user) return api(path, { method, body, headers, again: false, signal });
      // The request was sent as another account than the one now signed in (see refresh):
      // it is not replayed as this one.
      throw sessionChanged();
    }
    session.onLost();
  } else if (r.status === 401 && sent && session.pasted) session.onLost();
  // (a body cut short by `signal` is an error, not an empty answer)
  const data = r.status === 204 || r.status === 202 ? null
    : await r.json().catch((e) => { if (signal?.aborted) throw e; return null; });
  if (!r.ok) {
    const e = new Error(data?.detail || r.statusText);
    Object.assign(e, {
      status: r.status, code: data?.code, reason: data?.reason, detail: data?.detail,
      skus: data?.sku_ids, coupons: data?.coupon_ids, retryAfter: Number(r.headers.get("retry-after")) || 1,
    });
    throw e;
  }
  return data;
}

/** Every item of a paged list (`{items, next_cursor}`: a wallet, a wishlist), a hundred a
 * request, as `{items}`. */
export async function all(path) {
  const items = [];
  let cursor = null;
  do {
    const page = await api(`${path}?limit=100${cursor ? `&cursor=${enc(cursor)}` : ""}`);
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor);
  return { items };
}

/** Runs `send` until it answers, retrying busy answers (429, 503) and lost connections with
 * backoff that respects `Retry-After`; `busy(err)` hears about each retry. The caller keeps
 * the Idempotency-Key the same across these tries, so a retry never acts twice. */
export async function persist(send, busy = () => {}) {
  acting.count++;
  try { return await retrying(send, busy); } finally { acting.count--; }
}

async function retrying(send, busy) {
  const user = session.user;
  for (let attempt = 0; ; attempt++) {
    // An action retried is the account's that started it, never another's signed in since
    // (signed out meanwhile, the request itself meets the 401 that says so).
    if (session.user && session.user !== user) throw sessionChanged();
    try {
      return await send();
    } catch (err) {
      const again = err.status === 429 || err.status === 503 || err.status === undefined;
      if (!again || attempt >= 6) throw err;
      busy(err);
      const backoff = 500 * 2 ** attempt * (0.5 + Math.random());
      await new Promise((r) => setTimeout(r, Math.max((err.retryAfter ?? 1) * 1000, backoff)));
    }
  }
}

/** Actions under way (a purchase, a payment, a message): a reconnect does not repaint the
 * page under them. */
export const acting = { count: 0 };

/** Disables `button` (aria-busy) while `work` runs; the focus it had comes back after. */
export async function busy(button, work) {
  const focused = document.activeElement === button;
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  acting.count++;
  try { return await work(); } finally {
    acting.count--;
    button.disabled = false;
    button.setAttribute("aria-busy", "false");
    if (focused) refocus(button);
  }
}

/** Gives the focus back to `el` when an action left it nowhere: a focused button disabled while
 * it works, or replaced by the page drawn again, drops it to the body, and a keyboard or
 * screen-reader user loses their place. A replaced `el`'s successor is the element with its
 * id or first data attribute; without one, the page. The focus is left alone wherever else it
 * went (a new page focuses its own `main`). */
export function refocus(el) {
  if (document.activeElement && document.activeElement !== document.body) return;
  const data = el.getAttributeNames().find((n) => n.startsWith("data-"));
  const form = el.form?.id;
  const successor = el.isConnected ? el
    : el.id ? document.getElementById(el.id)
    : data ? document.querySelector(`[${data}="${CSS.escape(el.getAttribute(data))}"]`)
    : form && el.type === "submit" ? document.querySelector(`#${CSS.escape(form)} [type=submit]`) : null;
  (successor ?? document.querySelector("main"))?.focus({ preventScroll: true });
}

// ---- Live topics: one socket per tab, re-subscribed on reconnect ---------------------------

const topicOf = (m) => ({
  stock: `drop:${m.drop_id}`, availability: `product:${m.product_id}`, order: `order:${m.order_id}`,
  notification: "user", "chat.message": `chat:${m.room_id}`,
})[m.type];

export const live = {
  ws: null, retry: null, stay: null, page: new Map(), always: new Map(), backoff: 500, opened: false, away: false, onReconnect: () => {}, resume: null,
  /** Listens to `topic` while the current page shows. */
  on(topic, fn) { this.page.set(topic, fn); this.send({ type: "subscribe", topic }); },
  /** What the current page does after a reconnect instead of being painted again (it re-reads
   * what it shows, keeping what the user typed). */
  onResume(fn) { this.resume = fn; },
  /** Listens to `topic` on every page (the notification bell). */
  keep(topic, fn) { this.always.set(topic, fn); this.send({ type: "subscribe", topic }); },
  /** Leaves the page's topics. */
  reset() {
    for (const topic of this.page.keys()) if (!this.always.has(topic)) this.send({ type: "unsubscribe", topic });
    this.page.clear();
    this.resume = null;
  },
  send(m) { if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(m)); },
  open() {
    if (this.away) return;
    clearTimeout(this.retry);
    const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/v1/ws`);
    this.ws = ws;
    ws.onopen = async () => {
      this.backoff = 500;
      // The server closes a socket whose token expired: sign in with a fresh one.
      // (a pasted token has no refresh: it ends when it expires)
      if (session.token && !session.pasted && expiring(session.token)) await refresh().catch(() => false);
      if (session.token) this.send({ type: "auth", access_token: session.token });
      for (const topic of new Set([...this.always.keys(), ...this.page.keys()])) this.send({ type: "subscribe", topic });
      // After a reconnect, what was pushed meanwhile is lost: read the page again.
      if (this.opened) (this.resume ?? this.onReconnect)();
      this.opened = true;
    };
    ws.onmessage = (e) => {
      const m = JSON.parse(e.data);
      const topic = topicOf(m);
      if (!topic) return;
      this.always.get(topic)?.(m);
      this.page.get(topic)?.(m);
    };
    // (a socket replaced since, or closed on leaving, reconnects nothing)
    ws.onclose = () => {
      if (this.away || this.ws !== ws) return;
      this.retry = setTimeout(() => this.open(), this.backoff);
      this.backoff = Math.min(this.backoff * 2, 15000);
    };
  },
  /** Closes the socket before the page leaves for another site; see `pageshow` below. Still
   * here after 15 s (the navigation stopped), the page opens it again. */
  leave() {
    this.away = true;
    clearTimeout(this.retry);
    clearTimeout(this.stay);
    this.ws?.close();
    this.stay = setTimeout(() => this.back(), 15000);
  },
  back() { clearTimeout(this.stay); if (!this.away) return; this.away = false; this.open(); },
};

// A page left for another site (the gateway's page) may be kept in the back-forward cache, where
// the browser cuts its socket: [`live.leave`] closes it first, and the page opens it again when
// it comes back, reading the page again as after any reconnect. (No `pagehide` listener: with
// one, Chromium cancels a keepalive refresh still on the wire at a reload.)
addEventListener("pageshow", (e) => { if (e.persisted) live.back(); });

// ---- Routes --------------------------------------------------------------------------------

let ticker = null;
/** Runs `fn` now and every second while the current page shows. */
export const every = (fn) => { clearInterval(ticker); fn(); ticker = setInterval(fn, 1000); };

/** A hash router: `pages(root, name, arg, params, current)` paints `#/name/arg?params` into
 * `root`, a fresh element in `main`. Each route
 * change starts a generation; a page still loading for an older one stops at its next step
 * (`current()` is false) instead of painting over the new page. */
export function router(main, pages, { title }) {
  let generation = 0;
  async function route({ focus = true } = {}) {
    const mine = ++generation;
    const current = () => mine === generation;
    live.reset();
    clearInterval(ticker);
    // Each page paints into an element of its own, so its listeners leave with it.
    const root = document.createElement("div");
    main.replaceChildren(root);
    // A page still waiting for its data after a moment says so (a phone's network can take
    // seconds); its first paint replaces the words.
    const slow = setTimeout(() => {
      if (current() && !root.firstChild) root.innerHTML = `<p class="muted" data-t="loading">${esc(t("loading"))}</p>`;
    }, 400);
    try {
      // Anything but `#/...` is home.
      const [path, query = ""] = location.hash.startsWith("#/") ? location.hash.slice(1).split("?") : ["/"];
      const params = Object.fromEntries(new URLSearchParams(query));
      const [, page = "", ...rest] = (path || "/").split("/").map(decodeURIComponent);
      await pages(root, page, rest.join("/"), params, current);
    } catch (err) {
      if (current()) root.innerHTML = `<p class="error" role="alert">${esc(problem(err))}</p>`;
    } finally {
      clearTimeout(slow);
    }
    if (current()) {
      const heading = main.querySelector("h1")?.textContent;
      document.title = heading && heading !== title ? `${heading} · ${title}` : title;
      if (focus) main.focus({ preventScroll: true });
    }
  }
  window.addEventListener("hashchange", () => route());
  // After a reconnect a page without its own resume is painted again, unless an action is
  // under way on it (its outcome must land on the page that started it).
  live.onReconnect = () => { if (!acting.count) route({ focus: false }); };
  // The skip link moves the focus without becoming a route.
  document.querySelector(".skip")?.addEventListener("click", (e) => { e.preventDefault(); main.focus(); });
  return route;
}
