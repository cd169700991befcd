// The storefront's shell: header (search with autocomplete, cart, orders, notifications bell,
// account, language), the hash routes and the live socket. Pages are in shop.js (home,
// listings, product, drop), orders.js (cart, checkout, orders, support chat) and account.js.
// Routes: #/ #/search?q= #/category/NAME #/product/ID #/drop/ID #/cart #/checkout #/paid
// #/orders #/order/ID #/login #/signup #/verify?email= #/account #/notifications #/logout.

import { $, addWords, api, esc, keep, live, local, paintSignedIn, logOut, paintWords, resume, router, say, session, langButton, t, tabStore } from "/common/core.js";
import { TEXT } from "./text.js";
import { drop, home, listing, product } from "./shop.js";
import { cart, checkout, order, orders, paid } from "./orders.js";
import { account, login, notice, notifications, signup, verify } from "./account.js";

addWords(TEXT);

const main = $("#main");

// ---- Header --------------------------------------------------------------------------------

let unseen = 0;
function paintAuth() {
  paintSignedIn();
  $("#bell-count").textContent = unseen ? String(unseen) : "";
  $("#bell").setAttribute("aria-label", t("bell", { n: unseen }));
}

function paintCart(c) {
  const n = (c?.items ?? []).reduce((sum, l) => sum + l.quantity, 0);
  $("#cart-count").textContent = n ? String(n) : "";
}

function paintShell() {
  paintWords();
  $("#q").setAttribute("placeholder", t("search_hint"));
  paintAuth();
}

/** What a signed-in shopper sees in the header: the cart's size, new notifications (pushed
 * on `user`). */
async function signedIn() {
  paintAuth();
  if (!session.token) return;
  live.keep("user", (m) => {
    unseen++;
    paintAuth();
    // The order on screen shows its own change as it comes: no toast repeats it.
    const shown = m.order_id && location.hash.split("?")[0] === `#/order/${encodeURIComponent(m.order_id)}`;
    if (!shown) say(notice(m), { notice: true });
  });
  const [c, inbox] = await Promise.all([api("/cart").catch(() => null), api("/users/me/notifications?limit=20").catch(() => null)]);
  paintCart(c);
  // (`seen` was the browser's, before each account had its own)
  const seen = local.get(`seen:${session.user}`) ?? local.get("seen") ?? "";
  unseen = (inbox?.items ?? []).filter((n) => n.at > seen).length;
  paintAuth();
}

/** Draws the page signed out; `forget: false` leaves the browser's session flag and the other
 * tabs alone (a log-out that left another account's session to this browser). */
function signedOut({ forget = true } = {}) {
  if (forget) keep(null);
  live.always.delete("user");
  live.send({ type: "unsubscribe", topic: "user" });
  unseen = 0;
  paintCart(null);
  paintAuth();
}

// The session ended on its own: the page is drawn again signed out (asking to log in where it
// needs an account), and the log-in brings the shopper back here.
session.onLost = () => {
  signedOut();
  say(t("need_login"));
  // Not back to the log-in or log-out itself (a log-out of a session revoked elsewhere).
  if (!/^#\/(login|logout|signup|verify)\b/.test(location.hash)) tabStore.set("after_login", location.hash);
  route({ focus: false });
};
// Another tab logged in or out: this one follows.
session.onChange = () => { if (session.token) signedIn(); else signedOut(); route({ focus: false }); };
document.addEventListener("cart", (e) => paintCart(e.detail));
document.addEventListener("seen", () => { unseen = 0; paintAuth(); });

function searchBox() {
  const input = $("#q"), list = $("#suggest");
  let timer = null, active = -1, asked = 0;
  // Closing also drops a question still waiting or on its way: suggestions arriving after a
  // submit (Enter straight after typing) must not open over the results.
  const close = () => { clearTimeout(timer); asked++; list.hidden = true; input.setAttribute("aria-expanded", "false"); active = -1; };
  input.addEventListener("input", () => {
    clearTimeout(timer);
    const q = input.value.trim();
    if (!q) { close(); return; }
    timer = setTimeout(async () => {
      const mine = ++asked;
      const { suggestions } = await api(`/search/suggest?${new URLSearchParams({ q, limit: "8" })}`).catch(() => ({ suggestions: [] }));
      if (mine !== asked) return; // a newer question is on its way
      active = -1;
      input.removeAttribute("aria-activedescendant");
      list.innerHTML = suggestions.map((s, i) => `<li role="option" id="sg-${i}">${esc(s)}</li>`).join("");
      list.hidden = !suggestions.length;
      input.setAttribute("aria-expanded", String(!list.hidden));
    }, 150);
  });
  input.addEventListener("keydown", (e) => {
    const items = [...list.children];
    if (list.hidden || !items.length || !["ArrowDown", "ArrowUp", "Escape"].includes(e.key)) return;
    e.preventDefault();
    if (e.key === "Escape") { close(); return; }
    active = (active + (e.key === "ArrowDown" ? 1 : -1) + items.length) % items.length;
    items.forEach((li, i) => li.setAttribute("aria-selected", String(i === active)));
    input.value = items[active].textContent;
    input.setAttribute("aria-activedescendant", items[active].id);
  });
  list.addEventListener("mousedown", (e) => { if (e.target.matches("li")) { input.value = e.target.textContent; $("#search").requestSubmit(); } });
  input.addEventListener("blur", () => setTimeout(close, 100));
  $("#search").addEventListener("submit", (e) => {
    e.preventDefault(); close();
    location.hash = `#/search?${new URLSearchParams({ q: input.value.trim() })}`;
  });
}

// ---- Routes --------------------------------------------------------------------------------

/** A page that needs an account, signed out: to the log-in (this page replaced, so Back does
 * not land on it again), and back here after it. */
function toLogin() {
  tabStore.set("after_login", location.hash);
  location.replace("#/login");
}

const route = router(main, async (root, page, arg, params, current) => {
  switch (page) {
    case "search": return listing(root, params, current);
    case "category": return listing(root, { category: arg, cursor: params.cursor }, current);
    case "product": return product(root, arg, current);
    case "drop": return drop(root, arg, current);
    case "cart": return cart(root, current);
    case "checkout": return checkout(root, current);
    case "paid": return paid(root, params, current);
    case "orders": return orders(root, params, current);
    case "order": return order(root, arg, current);
    // Signed in already (Back onto the log-in page): the account, where logging out is; a
    // second log-in here would swap accounts under the other tabs.
    case "login": {
      if (!session.token) return login(root, params, signedIn);
      const back = tabStore.get("after_login");
      tabStore.remove("after_login");
      return location.replace(back || "#/account");
    }
    case "signup": return signup(root);
    case "verify": return verify(root, params);
    case "account": return session.token ? account(root, current, signedOut) : toLogin();
    case "notifications": return session.token ? notifications(root, params, current) : toLogin();
    case "logout": {
      // Not ended: another account had signed in since, whose session this tab now shows
      // (or will, once its refresh is answered).
      if (await logOut()) signedOut();
      else if (session.token) signedIn();
      else signedOut({ forget: false });
      // Replaced, so Back never lands here again.
      location.replace("#/");
      return;
    }
    default: return home(root, current);
  }
}, { title: "Emporium" });

langButton(paintShell, route);
paintShell();
searchBox();
await resume();
live.open();
signedIn();
route();
