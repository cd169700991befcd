// Buying: the cart (quantities, coupon from the wallet or a code, totals), checkout (the
// shipping address from the profile, then the gateway's checkout page and back), and orders
// (history, a live status timeline, tracking, cancel, return or exchange, support chat).

import { $, all, api, busy, enc, esc, every, fields, live, money, persist, problem, refocus, say, session, span, t, tabStore, tell, uuid, when } from "/common/core.js";
import { couponText } from "./account.js";

const needLogin = (main) => {
  tabStore.set("after_login", location.hash);
  main.innerHTML = `<h1>${t("need_login")}</h1><p><a class="button primary" href="#/login">${t("login")}</a></p>`;
};
const status = (s) => t(`st_${s}`);
/** Where the gateway sends the shopper back after paying (TossPayments adds
 * `?paymentKey=&orderId=&amount=`). */
const payUrl = (order) =>
  `${order.payment.checkout_url}&success_url=${enc(`${location.origin}${location.pathname}#/paid`)}`;

// ---- Cart ----------------------------------------------------------------------------------

export async function cart(main, current) {
  if (!session.token) return needLogin(main);
  let [c, wallet] = await Promise.all([api("/cart"), all("/users/me/coupons")]);
  if (!current()) return;
  const paint = () => {
    const usable = wallet.items.filter((w) => w.status === "issued" || w.coupon_id === c.coupon?.coupon_id);
    main.innerHTML = `<h1>${t("cart")}</h1>
      ${c.items.length ? `<ul class="lines">${c.items.map((l, i) => {
        // A line above what is on sale now: checkout would refuse it, so say so here.
        const short = l.available !== undefined && l.quantity > l.available;
        return `<li class="line">
        <a href="#/product/${enc(l.product_id)}" class="name">${esc(l.name)}</a>
        <span class="muted">${esc(Object.values(l.options ?? {}).join(" / ") || l.sku_id)} · ${money(l.unit_price, c.currency)}</span>
        <input type="number" inputmode="numeric" min="0" max="99" value="${l.quantity}" data-sku="${esc(l.sku_id)}" aria-label="${esc(t("quantity", { name: l.name }))}"${short ? ` aria-invalid="true" aria-describedby="short-${i}"` : ""}>
        <span class="num">${money(l.line_total, c.currency)}</span>
        <button type="button" data-remove="${esc(l.sku_id)}" aria-label="${esc(t("remove", { name: l.name }))}">✕</button>
        ${short ? `<p class="error short" id="short-${i}">${l.available ? t("short_stock", { n: l.available }) : t("no_stock")}</p>` : ""}</li>`;
      }).join("")}</ul>
      <form class="row" id="coupon-form"><label>${t("your_coupons")}
        <select name="coupon_id"><option value="">${t("no_coupon")}</option>${usable.map((w) => `<option value="${esc(w.coupon_id)}" ${w.coupon_id === c.coupon?.coupon_id ? "selected" : ""}>${esc(couponText(w))}</option>`).join("")}</select></label>
        <button type="submit">${t("apply")}</button></form>
      <form class="row" id="claim-form"><label>${t("coupon_code")} <input name="code" autocomplete="off" required maxlength="40"></label>
        <button type="submit">${t("claim")}</button></form>
      ${c.coupon && !c.coupon.applicable ? `<p class="error">${t("coupon_off")} ${esc(problem({ code: "coupon_not_applicable", reason: c.coupon.reason }))}</p>` : ""}
      <dl class="totals" aria-live="polite"><dt>${t("subtotal")}</dt><dd>${money(c.subtotal, c.currency)}</dd>
        <dt>${t("discount")}</dt><dd>−${money(c.discount, c.currency)}</dd>
        <dt>${t("total")}</dt><dd class="price">${money(c.total, c.currency)}</dd></dl>
      <p><button class="primary" type="button" id="checkout">${t("checkout")}</button></p>`
      : `<p class="muted">${t("empty_cart")}</p><p><a class="button" href="#/">${t("products")}</a></p>`}`;
  };
  // Painting again keeps the keyboard where it was: the same control of the same line (the
  // one it had moved to, after a quantity's Tab), else the page.
  const change = async (work) => {
    const who = session.user;
    try {
      c = await work();
      // (the header's count is the account's signed in now)
      if (session.user === who) document.dispatchEvent(new CustomEvent("cart", { detail: c }));
    } catch (err) { say(problem(err)); }
    if (!current()) return;
    const at = document.activeElement;
    paint();
    if (at && at !== document.body) refocus(at);
  };
  live.onResume(() => {});
  paint();
  main.addEventListener("change", (e) => {
    if (!e.target.dataset.sku) return;
    // An emptied box is not a removal (the ✕ is): it goes back to what the cart holds.
    if (e.target.value.trim() === "") { paint(); return; }
    const quantity = Math.max(0, Math.min(99, Math.floor(Number(e.target.value)) || 0));
    change(() => api(`/cart/items/${enc(e.target.dataset.sku)}`, { method: "PUT", body: { quantity } }));
  });
  main.addEventListener("click", (e) => {
    const sku = e.target.closest("[data-remove]")?.dataset.remove;
    if (sku) change(() => api(`/cart/items/${enc(sku)}`, { method: "DELETE" }));
    if (e.target.id === "checkout") location.hash = "#/checkout";
  });
  // A code claimed before: its coupon goes on the cart if it is still to use, else the shopper
  // hears what became of it (held by an order, used, expired: the first of these any has).
  const claimedBefore = async (ids) => {
    try {
      wallet = await all("/users/me/coupons");
    } catch (err) { say(problem(err)); return; }
    const mine = wallet.items.filter((w) => ids.includes(w.coupon_id));
    const ready = mine.find((w) => w.status === "issued");
    if (ready) {
      say(t("already_claimed"), { notice: true });
      await change(() => api("/cart/coupon", { method: "PUT", body: { coupon_id: ready.coupon_id } }));
      return;
    }
    const status = ["reserved", "used", "expired"].find((s) => mine.some((w) => w.status === s));
    say(t(status ? `claimed_${status}` : "already_claimed"));
  };
  main.addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = new FormData(e.target);
    if (e.target.id === "coupon-form") {
      const id = f.get("coupon_id");
      change(() => (id ? api("/cart/coupon", { method: "PUT", body: { coupon_id: id } }) : api("/cart/coupon", { method: "DELETE" })));
    } else if (e.target.id === "claim-form") {
      await busy(e.target.querySelector("button"), async () => {
        try {
          const claimed = await api("/coupons/claim", { method: "POST", body: { code: f.get("code").trim() } });
          say(t("claimed"), { notice: true }); // stays beside what applying it says
          wallet = await all("/users/me/coupons");
          await change(() => api("/cart/coupon", { method: "PUT", body: { coupon_id: claimed.coupon_id } }));
        } catch (err) {
          if (err.code === "already_claimed") await claimedBefore(err.coupons ?? []);
          else say(err.status === 404 ? t("coupon_not_found") : problem(err));
        }
      });
    }
  });
}

// ---- Checkout ------------------------------------------------------------------------------

export async function checkout(main, current) {
  if (!session.token) return needLogin(main);
  const [c, me] = await Promise.all([api("/cart"), api("/users/me")]);
  if (!current()) return;
  if (!c.items.length) { location.replace("#/cart"); return; }
  const field = (name, label, value, extra = "") =>
    `<label>${t(label)} <input name="${name}" value="${esc(value ?? "")}" ${extra}></label>`;
  main.innerHTML = `<h1>${t("checkout")}</h1>
    <form class="stack" id="checkout-form"><fieldset class="stack"><legend>${t("shipping")}</legend>
      ${field("name", "name", me.name, 'autocomplete="name" required maxlength="50"')}
      ${field("phone", "phone", me.phone, 'autocomplete="tel" type="tel" required maxlength="20"')}
      ${field("address", "address", me.address, 'autocomplete="street-address" required maxlength="200"')}
      ${field("postal_code", "postal_code", "", 'autocomplete="postal-code" maxlength="10"')}</fieldset>
      <h2>${t("summary")}</h2><ul class="lines">${c.items.map((l) => `<li class="line"><span class="name">${esc(l.name)}</span><span>× ${l.quantity}</span><span class="num">${money(l.line_total, c.currency)}</span></li>`).join("")}</ul>
      <dl class="totals"><dt>${t("subtotal")}</dt><dd>${money(c.subtotal, c.currency)}</dd>
        <dt>${t("discount")}</dt><dd>−${money(c.discount, c.currency)}</dd>
        <dt>${t("total")}</dt><dd class="price">${money(c.total, c.currency)}</dd></dl>
      <button class="primary" type="submit">${t("pay", { p: money(c.total, c.currency) })}</button>
      <p id="checkout-outcome" role="status" aria-live="polite"></p></form>`;
  live.onResume(() => {});
  $("#checkout-form", main).addEventListener("submit", async (e) => {
    e.preventDefault();
    const button = e.submitter ?? e.target.querySelector("button");
    if (button.disabled) return;
    const { name, phone, address, postal_code } = fields(e.target);
    const shipping_address = { name, phone, address, ...(postal_code && { postal_code }) };
    const body = { shipping_address, ...(c.coupon?.applicable && { coupon_id: c.coupon.coupon_id }) };
    const ask = JSON.stringify({ user: session.user, body, lines: c.items.map((l) => [l.sku_id, l.quantity]) });
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    const who = session.user;
    const place = async (key) => persist(() => api("/orders", { method: "POST", body, headers: { "idempotency-key": key } }),
      () => { tell(main, "#checkout-outcome", t("retrying")); });
    try {
      const { key, kept } = orderKey(ask);
      let order = await place(key);
      // A kept key's answer is replayed as first given: ask the order itself whether it still
      // waits for payment. Expired, cancelled or paid since, this press is a new order.
      // (unread, the press fails and keeps the key: the next one asks again)
      if (kept && order.status === "awaiting_payment") {
        const now = await persist(() => api(`/orders/${enc(order.order_id)}`));
        if (now.status !== "awaiting_payment") order = await place(orderKey(ask, true).key);
      }
      // Another account signed in while the order was made (the page is drawn again for it):
      // the payment page would be for an order that is not its own.
      if (session.user !== who) { say(t("order_for_other")); return; }
      // Nothing to pay (a coupon took the whole total): the order is paid as placed.
      if (order.status === "paid") {
        paidOff();
        location.assign(`#/order/${enc(order.order_id)}`);
        return;
      }
      tell(main, "#checkout-outcome", t("to_payment"));
      // The button stays off: the browser is leaving for the gateway's page. Back from there
      // (the page kept in the back-forward cache), Pay works again, with the same key; so it
      // does if the page is still here after a few seconds (the shopper stopped the navigation,
      // or the gateway is slow: another press finds the same order).
      const again = () => {
        clearTimeout(stopped);
        removeEventListener("pageshow", restored);
        button.disabled = false;
        button.setAttribute("aria-busy", "false");
        const out = $("#checkout-outcome", main);
        if (out) out.textContent = "";
      };
      const restored = (ev) => { if (ev.persisted) again(); };
      const stopped = setTimeout(again, 4000);
      addEventListener("pageshow", restored);
      live.leave();
      location.assign(payUrl(order));
    } catch (err) {
      // A refusal of the request itself is final: the next press is a new request. Any other
      // outcome (no answer, a 5xx, busy, the session ended) may follow an order made whose
      // answer was lost: the key stays, so the next press finds it.
      if ([400, 404, 409, 413, 415, 422].includes(err.status)) forgetOrderKey();
      tell(main, "#checkout-outcome", problem(err));
      button.disabled = false;
      button.setAttribute("aria-busy", "false");
    }
  });
}

/** The Idempotency-Key of this tab's order from checkout, kept in `sessionStorage` with what it
 * asked (`ask`: the account, the address, the coupon and the cart's lines). A press asking the
 * same again — a retry, a second press, a press after a reload or after Back from the gateway's
 * page — sends the same key (`kept`) and finds the order made, instead of a second order holding
 * the same stock until it expires. Anything else asked (`ask` differs) or `fresh` takes a new
 * key. Without storage the key lives as long as the page. */
let checkoutKey = null;
function orderKey(ask, fresh = false) {
  let kept = checkoutKey;
  try { kept = JSON.parse(tabStore.get("checkout_key") ?? "null") ?? kept; } catch { /* unreadable: the page's copy */ }
  if (!fresh && kept?.ask === ask) return { key: kept.key, kept: true };
  checkoutKey = { ask, key: uuid() };
  tabStore.set("checkout_key", JSON.stringify(checkoutKey));
  return { key: checkoutKey.key, kept: false };
}
function forgetOrderKey() {
  checkoutKey = null;
  tabStore.remove("checkout_key");
}
/** The checkout's order is paid: the header's cart is empty (the server cleared it) and the
 * key's work is done. */
function paidOff() {
  document.dispatchEvent(new CustomEvent("cart", { detail: { items: [] } }));
  forgetOrderKey();
}

/** Statuses of an order that has taken no payment. */
const UNPAID = ["pending", "rejected", "awaiting_payment", "payment_failed", "expired", "cancelled"];

/** Back from the gateway: confirm the payment, then show the order. */
export async function paid(main, { paymentKey, orderId, amount }, current) {
  if (!session.token) return needLogin(main);
  main.innerHTML = `<h1>${t("paid_title")}</h1><p role="status" id="paid-status">${t("confirming")}</p>`;
  live.onResume(() => {});
  try {
    await persist(() => api("/payments/confirm", {
      method: "POST",
      body: { order_id: orderId, payment_key: paymentKey, amount: Number(amount) },
      headers: { "idempotency-key": `confirm-${paymentKey}` },
    }));
    paidOff();
    if (current()) location.replace(`#/order/${enc(orderId)}`);
  } catch (err) {
    // Paid again from the gateway's page after Back: the order took its first payment, and
    // this one is never confirmed, so nothing more is charged.
    const settled = err.code === "order_not_payable" &&
      await api(`/orders/${enc(orderId)}`).then((o) => !UNPAID.includes(o.status), () => false);
    if (settled) forgetOrderKey();
    if (!current()) return;
    if (settled) {
      say(t("already_paid"));
      location.replace(`#/order/${enc(orderId)}`);
      return;
    }
    main.querySelector("h1").textContent = t("paid_failed");
    $("#paid-status", main).innerHTML = `${esc(problem(err))} <a href="#/order/${enc(orderId)}">${t("order", { id: esc(orderId) })}</a>`;
  }
}

// ---- Orders --------------------------------------------------------------------------------

export async function orders(main, { cursor }, current) {
  if (!session.token) return needLogin(main);
  const page = await api(`/orders?${new URLSearchParams({ limit: "20", ...(cursor && { cursor }) })}`);
  if (!current()) return;
  main.innerHTML = `<h1>${t("orders")}</h1>
    ${page.items.length ? `<ul class="lines">${page.items.map((o) => `<li class="line">
      <a class="name" href="#/order/${enc(o.order_id)}">${esc(o.title)}</a>
      <span class="tag">${status(o.status)}</span><span class="muted">${when(o.created_at)}</span>
      <span class="num">${money(o.total, o.currency)}</span></li>`).join("")}</ul>` : `<p class="muted">${t("no_orders")}</p>`}
    ${page.next_cursor ? `<p class="pager"><a class="button" href="#/orders?cursor=${enc(page.next_cursor)}">${t("more")}</a></p>` : ""}`;
}

export async function order(main, id, current) {
  if (!session.token) return needLogin(main);
  let o = null, missed = false;
  // Subscribe first: a change pushed while the order is read is read again afterwards.
  live.on(`order:${id}`, () => { if (o) reload(); else missed = true; });
  let resumeChat = () => {};
  live.onResume(() => { reload(); resumeChat(); });
  const reload = async () => {
    try {
      const fresh = await api(`/orders/${enc(id)}`);
      if (!current()) return;
      o = fresh;
      paint();
    } catch (err) { say(problem(err)); }
  };
  o = await api(`/orders/${enc(id)}`);
  // An order without an address of its own (a drop purchase) ships to the profile's: one the
  // profile lacks would stop it at the carrier's booking, so the page says so while it can.
  const me = o.shipping_address ? null : await api("/users/me").catch(() => null);
  const unshippable = () => ["awaiting_payment", "paid"].includes(o.status) && me && !(me.name && me.phone && me.address);
  if (!current()) return;
  main.innerHTML = `<h1>${esc(o.items[0]?.name ?? t("orders"))}${o.items.length > 1 ? ` +${o.items.length - 1}` : ""}</h1>
    <p class="muted id">${t("order", { id: esc(o.order_id) })}</p>
    <p>${t("status")}: <strong id="order-status" aria-live="polite"></strong> <span id="pay-by" class="muted num"></span></p>
    <div id="order-body"></div><section id="chat" aria-labelledby="chat-title"><h2 id="chat-title">${t("chat")}</h2>
    <button type="button" id="open-chat">${t("open_chat")}</button></section>`;
  const paint = () => {
    if ($("#order-status", main).textContent !== status(o.status)) $("#order-status", main).textContent = status(o.status);
    const s = o.shipment;
    $("#order-body", main).innerHTML = `
      <div class="row" id="order-actions">
        ${o.status === "awaiting_payment" && o.payment.checkout_url ? `<a class="button primary" href="${esc(payUrl(o))}">${t("pay_now")}</a>` : ""}
        ${["awaiting_payment", "paid", "preparing"].includes(o.status) ? `<button type="button" id="cancel">${t("cancel_order")}</button>` : ""}
      </div>
      <h2>${t("timeline")}</h2><ol class="timeline">${o.status_history.map((h) => `<li><strong>${status(h.status)}</strong> <span class="muted">${when(h.at)}</span></li>`).join("")}</ol>
      ${s ? `<h2>${t("tracking", { n: esc(s.tracking_number), c: esc(s.carrier) })}</h2>
        <ol class="timeline">${s.events.map((ev) => `<li>${t(`sh_${ev.status}`)} <span class="muted">${when(ev.at)}</span></li>`).join("")}${
          // A parcel booked before the order was cancelled: the carrier's booking was cancelled too.
          o.status === "cancelled" && s.status !== "delivered" ? `<li>${t("sh_cancelled")}</li>` : ""}</ol>` : ""}
      <h2>${t("items")}</h2><ul class="lines">${o.items.map((l) => `<li class="line"><a class="name" href="#/product/${enc(l.product_id)}">${esc(l.name)}</a><span>× ${l.quantity}</span><span class="num">${money(l.line_total, o.currency)}</span></li>`).join("")}</ul>
      <dl class="totals"><dt>${t("subtotal")}</dt><dd>${money(o.subtotal, o.currency)}</dd>
        <dt>${t("discount")}</dt><dd>−${money(o.discount, o.currency)}</dd><dt>${t("total")}</dt><dd class="price">${money(o.total, o.currency)}</dd></dl>
      ${o.shipping_address ? `<h2>${t("shipping")}</h2><p>${esc(o.shipping_address.name)} · ${esc(o.shipping_address.phone)}<br>${esc(o.shipping_address.address)} ${esc(o.shipping_address.postal_code ?? "")}</p>`
        : `<h2>${t("shipping")}</h2><p class="${unshippable() ? "error" : "muted"}">${unshippable()
          ? `${t("ship_needs_profile")} <a href="#/account">${t("account")}</a>` : t("ships_to_profile")}</p>`}
      ${returnForm(returnable(o))}`;
  };
  paint();
  if (missed) reload();
  every(() => {
    const left = o.status === "awaiting_payment" && o.expires_at ? Date.parse(o.expires_at) - Date.now() : 0;
    $("#pay-by", main).textContent = left > 0 ? t("pay_by", { t: span(left) }) : "";
  });
  main.addEventListener("click", async (e) => {
    if (e.target.id === "cancel") {
      e.target.outerHTML = `<button type="button" id="confirm-cancel" class="danger">${t("confirm_cancel")}</button>`;
      $("#confirm-cancel", main).focus();
    } else if (e.target.id === "confirm-cancel") {
      const key = uuid();
      await busy(e.target, async () => {
        try {
          await persist(() => api(`/orders/${enc(id)}/cancel`, { method: "POST", headers: { "idempotency-key": key } }));
          say(t("cancelled_ok"));
        } catch (err) { say(problem(err)); }
      });
      // The page is drawn again with the outcome: the focus goes to it, not to the body.
      await reload();
      if (current()) refocus(e.target);
    } else if (e.target.id === "open-chat") {
      const resume = await chat(e.target.closest("section"), o, current);
      if (resume) resumeChat = resume;
    }
  });
  main.addEventListener("submit", async (e) => {
    if (e.target.id !== "return-form") return;
    e.preventDefault();
    const f = new FormData(e.target);
    const items = [...e.target.querySelectorAll("input[name=units]")]
      .map((input) => ({ sku_id: input.dataset.sku, quantity: Number(input.value) }))
      .filter((item) => item.quantity > 0);
    if (!items.length) {
      say(t("return_pick"));
      return;
    }
    const key = uuid();
    const button = e.target.querySelector("button[type=submit]");
    await busy(button, async () => {
      try {
        const body = { kind: f.get("kind"), reason: f.get("reason").trim(), items };
        await persist(() => api(`/orders/${enc(id)}/returns`, { method: "POST", body, headers: { "idempotency-key": key } }));
        say(t("return_sent"));
      } catch (err) { say(problem(err)); }
    });
    await reload();
    if (current()) refocus(button);
  });
}

/** The order's lines with the units the shopper still holds (`left`), while a return or an
 * exchange may be asked, as the engine decides it: the last shipment delivered (not an
 * exchange's replacement still on its way), and units not returned yet. Empty otherwise. */
function returnable(o) {
  const after = ["delivered", "return_requested", "returned", "refunded"].includes(o.status);
  if (!after || o.shipment?.status !== "delivered") return [];
  const back = {};
  for (const r of (o.returns ?? []).filter((r) => r.kind === "return")) {
    for (const item of r.items) back[item.sku_id] = (back[item.sku_id] ?? 0) + item.quantity;
  }
  return o.items.map((l) => ({ ...l, left: l.quantity - (back[l.sku_id] ?? 0) })).filter((l) => l.left > 0);
}

/** The return and exchange form over `lines` (see `returnable`): every unit left is chosen at
 * first; the shopper lowers what stays. */
function returnForm(lines) {
  if (!lines.length) return "";
  return `<form class="stack" id="return-form"><fieldset><legend>${t("return_title")}</legend>
    <label><input type="radio" name="kind" value="return" checked> ${t("kind_return")}</label>
    <label><input type="radio" name="kind" value="exchange"> ${t("kind_exchange")}</label></fieldset>
    <fieldset><legend>${t("return_items")}</legend><ul class="lines">${lines.map((l) => `<li class="line">
      <span class="name">${esc(l.name)}</span><input type="number" inputmode="numeric" name="units" min="0" max="${l.left}"
        value="${l.left}" data-sku="${esc(l.sku_id)}" aria-label="${esc(t("return_units", { name: l.name, n: l.left }))}">
      <span class="muted">${t("of_left", { n: l.left })}</span></li>`).join("")}</ul></fieldset>
    <label>${t("reason")} <input name="reason" required maxlength="200"></label>
    <button type="submit">${t("send_return")}</button></form>`;
}

// ---- Support chat, one room per order ------------------------------------------------------

/** Opens the order's support room in `section`: history (older pages on demand), live messages,
 * the send form. Returns what to do after a reconnect. */
async function chat(section, o, current) {
  const room = await api("/chat/rooms", { method: "POST", body: { name: `Order ${o.order_id}`.slice(0, 100), order_id: o.order_id } })
    .catch((err) => { say(problem(err)); return null; });
  if (!room || !current()) return;
  section.innerHTML = `<h2 id="chat-title">${t("chat")}</h2>
    <p><button type="button" id="older" hidden>${t("older")}</button></p>
    <ol class="messages" id="messages" aria-live="polite"></ol>
    <form class="row" id="chat-form"><label class="grow">${t("message")} <input name="text" required maxlength="1000" autocomplete="off"></label>
      <button class="primary" type="submit">${t("send")}</button></form>`;
  const seen = new Set();
  const line = (m) => `<li data-id="${m.message_id}"><strong>${m.author === session.user ? t("you") : t("support")}</strong>
    <span class="muted">${when(m.at)}</span><br>${m.erased ? `<em class="muted">${t("erased")}</em>` : esc(m.text)}</li>`;
  const add = (messages, where) => {
    const fresh = messages.filter((m) => !seen.has(m.message_id));
    fresh.forEach((m) => seen.add(m.message_id));
    $("#messages", section).insertAdjacentHTML(where, fresh.map(line).join(""));
  };
  let before = null;
  const older = async () => {
    const page = await api(`/chat/rooms/${enc(room.room_id)}/messages?${new URLSearchParams({ limit: "20", ...(before && { before }) })}`);
    if (!current()) return;
    add(page.items.slice().reverse(), "afterbegin");
    before = page.next_cursor;
    $("#older", section).hidden = !before;
  };
  live.on(`chat:${room.room_id}`, (m) => add([m], "beforeend"));
  await older();
  $("#older", section).addEventListener("click", () => older().catch((err) => say(problem(err))));
  $("#chat-form", section).addEventListener("submit", async (e) => {
    e.preventDefault();
    const input = e.target.elements.text;
    const text = input.value.trim();
    if (!text) return;
    const client_msg_id = uuid();
    await busy(e.target.querySelector("button"), async () => {
      try {
        const m = await persist(() => api(`/chat/rooms/${enc(room.room_id)}/messages`, { method: "POST", body: { text, client_msg_id } }));
        add([m], "beforeend");
        input.value = "";
      } catch (err) { say(problem(err)); }
    });
    input.focus();
  });
  $("#chat-form", section).elements.text.focus();
  // After a reconnect, what was said meanwhile: the newest page again (duplicates skipped).
  return async () => {
    const page = await api(`/chat/rooms/${enc(room.room_id)}/messages?limit=50`).catch(() => null);
    if (page && current()) add(page.items.slice().reverse(), "beforeend");
  };
}
