// Accounts: log in, sign up and the emailed code (in dev mode a link to the dev mailbox), and
// the account page (profile, coupons, wishlist, notifications, delete account).

import { $, all, api, busy, cookiesRefused, enc, esc, fields as values, keep, known, local, money, logIn, problem, say, session, t, tabStore, tell, when } from "/common/core.js";

const field = (name, label, value = "", extra = "") =>
  `<label>${t(label)} <input name="${name}" value="${esc(value ?? "")}" ${extra}></label>`;
const form = (id, inner, submit) =>
  `<form class="stack" id="${id}">${inner}<button class="primary" type="submit">${t(submit)}</button>
   <p id="${id}-error" class="error" role="alert"></p></form>`;

export function login(main, { email = "" }, onLogin) {
  main.innerHTML = `<h1>${t("login")}</h1>
    ${form("login-form", `${field("email", "email", email, 'type="email" autocomplete="username" required')}
      ${field("password", "password", "", 'type="password" autocomplete="current-password" required')}`, "login")}
    <p>${t("no_account")} <a href="#/signup">${t("signup")}</a></p>
    ${!cookiesRefused() ? "" : `<p class="muted" id="no-cookies">${t("no_cookies")}</p>`}`;
  $("#login-form", main).addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = new FormData(e.target);
    // (it may wait for a refresh another page left on the wire: one press, one session)
    await busy(e.submitter ?? e.target.querySelector("button"), async () => {
      try {
        await logIn(f.get("email"), f.get("password"));
        say(t("welcome"));
        onLogin();
        // Back where the log-in was asked for (a drop about to open), else home.
        const back = tabStore.get("after_login");
        tabStore.remove("after_login");
        location.hash = back?.startsWith("#/") && !/^#\/(login|logout|signup|verify)\b/.test(back) ? back : "#/";
      } catch (err) {
        tell(main, "#login-form-error", problem(err));
        if (err.code === "email_not_verified") location.hash = `#/verify?${new URLSearchParams({ email: f.get("email") })}`;
      }
    });
  });
}

export function signup(main) {
  main.innerHTML = `<h1>${t("signup_title")}</h1>
    ${form("signup-form", `${field("email", "email", "", 'type="email" autocomplete="email" required maxlength="254"')}
      ${field("password", "password", "", 'type="password" autocomplete="new-password" required minlength="10" aria-describedby="pw-hint"')}
      <small id="pw-hint" class="muted">${t("password_hint")}</small>
      ${field("name", "name", "", 'autocomplete="name" required maxlength="50"')}
      ${field("phone", "phone_opt", "", 'type="tel" autocomplete="tel" maxlength="20"')}`, "signup")}
    <p>${t("have_account")} <a href="#/login">${t("login")}</a></p>`;
  $("#signup-form", main).addEventListener("submit", async (e) => {
    e.preventDefault();
    const { email, password, name, phone } = values(e.target);
    await busy(e.submitter ?? e.target.querySelector("button"), async () => {
      try {
        const r = await api("/auth/signup", { method: "POST", body: { email, password, name, ...(phone && { phone }) } });
        // In dev mode the answer says where the mailed code can be read.
        location.hash = `#/verify?${new URLSearchParams({ email: r.email, ...(r.dev_mailbox && { mailbox: r.dev_mailbox }) })}`;
      } catch (err) { tell(main, "#signup-form-error", problem(err)); }
    });
  });
}

export function verify(main, { email = "", mailbox = "" }) {
  // The dev mailbox (dev mode only) is linked when sign-up named it.
  const dev = mailbox.startsWith("/api/v1/dev/mailbox?");
  main.innerHTML = `<h1>${t("verify")}</h1><p>${esc(t("code_sent", { email }))}</p>
    ${dev ? `<p><a href="${esc(mailbox)}" target="_blank" rel="noopener">${t("dev_mailbox")}</a></p>` : ""}
    ${form("verify-form", `${field("email", "email", email, 'type="email" autocomplete="email" required')}
      ${field("code", "code", "", 'inputmode="numeric" autocomplete="one-time-code" required pattern="\\s*[0-9]{6}\\s*"')}`, "verify")}
    <p><button type="button" id="resend">${t("resend")}</button></p>`;
  $("#verify-form", main).addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = values(e.target);
    try {
      await api("/auth/verify-email", { method: "POST", body });
      say(t("verified"));
      location.hash = `#/login?${new URLSearchParams({ email: body.email })}`;
    } catch (err) {
      tell(main, "#verify-form-error", problem(err));
      if (err.code === "already_verified") location.hash = `#/login?${new URLSearchParams({ email: body.email })}`;
    }
  });
  $("#resend", main).addEventListener("click", async (e) => {
    const address = $("#verify-form", main).elements.email.value.trim();
    await busy(e.target, () => api("/auth/resend-code", { method: "POST", body: { email: address } })
      .then(() => say(t("resent")), (err) => say(problem(err))));
  });
}

/** The account page. A phone or address left empty is removed (`null` in the PATCH). */
export async function account(main, current, onLogout) {
  const [me, wallet, wishlist] = await Promise.all([api("/users/me"), all("/users/me/coupons"), all("/users/me/wishlist")]);
  if (!current()) return;
  main.innerHTML = `<h1>${t("account")}</h1>
    <section><h2>${t("profile")}</h2><p class="muted">${esc(me.email)}</p>
    ${form("profile-form", `${field("name", "name", me.name, 'autocomplete="name" required maxlength="50"')}
      ${field("phone", "phone", me.phone, 'type="tel" autocomplete="tel" maxlength="20"')}
      ${field("address", "address", me.address, 'autocomplete="street-address" maxlength="200"')}`, "save")}</section>
    <section><h2>${t("your_coupons")}</h2>${wallet.items.length ? `<ul class="lines">${wallet.items.map((w) => `<li class="line">
      <span class="name">${esc(couponText(w))}</span><span class="tag">${esc(t(`cw_${w.status}`))}</span>
      ${w.ends_at ? `<span class="muted">${when(w.ends_at)}</span>` : ""}</li>`).join("")}</ul>` : `<p class="muted">${t("no_coupons")}</p>`}
      <p><a href="#/cart">${t("claim")}</a></p></section>
    <section><h2>${t("wishlist")}</h2>${wishlist.items.length ? `<ul class="lines">${wishlist.items.map((w) => `<li class="line">
      <a class="name" href="#/product/${enc(w.product_id)}">${esc(w.name)}</a><span>${esc(t("from", { p: money(w.price_from) }))}</span>
      <span class="${w.in_stock ? "ok" : "muted"}">${t(w.in_stock ? "in_stock" : "out_of_stock")}</span></li>`).join("")}</ul>` : `<p class="muted">${t("empty_wishlist")}</p>`}</section>
    <section><h2>${t("notifications")}</h2><p><a href="#/notifications">${t("notifications")}</a> · <a href="#/orders">${t("orders")}</a></p></section>
    <section><h2>${t("delete_account")}</h2><p class="muted">${t("delete_warning")}</p>
      <button type="button" id="delete" class="danger">${t("delete_account")}</button></section>`;
  $("#profile-form", main).addEventListener("submit", async (e) => {
    e.preventDefault();
    const { name, phone, address } = values(e.target);
    try {
      await api("/users/me", { method: "PATCH", body: { name, phone: phone || null, address: address || null } });
      $("#profile-form-error", main).textContent = "";
      say(t("saved"));
    } catch (err) { tell(main, "#profile-form-error", problem(err)); }
  });
  main.addEventListener("click", async (e) => {
    if (e.target.id === "delete") {
      e.target.outerHTML = `<button type="button" id="confirm-delete" class="danger">${t("confirm_delete")}</button>`;
      $("#confirm-delete", main).focus();
    } else if (e.target.id === "confirm-delete") {
      try {
        await api("/users/me", { method: "DELETE" });
        keep(null);
        say(t("deleted"));
        onLogout();
        location.hash = "#/";
      } catch (err) { say(t("not_deleted", { why: problem(err) })); }
    }
  });
}

/** A coupon's name with what it takes off (`10% off, up to ₩5,000, on ₩30,000 or more`), from
 * its wallet entry's `campaign` (only the name for an entry without one). */
export const couponText = (w) => {
  const c = w.campaign, name = w.name ?? w.campaign_id;
  if (!c) return name;
  const off = [c.kind === "percent" ? t("off_percent", { n: c.value }) : t("off_fixed", { amount: money(c.value) })];
  if (c.max_discount != null) off.push(t("off_up_to", { amount: money(c.max_discount) }));
  if (c.min_order != null) off.push(t("off_from", { amount: money(c.min_order) }));
  return `${name} (${off.join(", ")})`;
};

/** What a kind's words need from the notification (older notifications lack it). */
const NEEDS = { order_refunded: "amount", drop_starting: "name", chat_mention: "name" };
/** A notification in the page's language: the words of its kind (and `reason`, where a kind
 * has several), with its amount or name, and an order's title after them; the server's English
 * text for one this page has no words for, or one stored before notifications said what the
 * words need. */
export const notice = (n) => {
  const key = n.reason == null ? `n_${n.kind}` : `n_${n.kind}_${n.reason}`;
  const need = NEEDS[n.kind];
  if (!known(key) || (need && n[need] == null)) return n.text;
  const words = t(key, { amount: n.amount == null ? "" : money(n.amount, n.currency), name: n.name ?? "" });
  return n.kind.startsWith("order_") && n.name ? `${words} (${n.name})` : words;
};
/** Where a notification leads: its order (a support room's too: `s` and the order id), its drop. */
const about = (n) => n.order_id ? `#/order/${enc(n.order_id)}` : n.drop_id ? `#/drop/${enc(n.drop_id)}`
  : n.room_id?.startsWith("s") ? `#/order/${enc(n.room_id.slice(1))}` : null;

export async function notifications(main, { cursor }, current) {
  const page = await api(`/users/me/notifications?${new URLSearchParams({ limit: "20", ...(cursor && { cursor }) })}`);
  if (!current()) return;
  main.innerHTML = `<h1>${t("notifications")}</h1>
    ${page.items.length ? `<ul class="lines">${page.items.map((n) => `<li class="line">${about(n)
      ? `<a class="name" href="${about(n)}">${esc(notice(n))}</a>` : `<span class="name">${esc(notice(n))}</span>`}
      <span class="muted">${when(n.at)}</span></li>`).join("")}</ul>` : `<p class="muted">${t("no_notifications")}</p>`}
    ${page.next_cursor ? `<p class="pager"><a class="button" href="#/notifications?cursor=${enc(page.next_cursor)}">${t("more")}</a></p>` : ""}`;
  // Per account: another account in this browser has its own unread ones.
  if (!cursor && page.items[0]) local.set(`seen:${session.user}`, page.items[0].at);
  document.dispatchEvent(new Event("seen"));
}
