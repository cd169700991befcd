// The shop's pages: home (drops, best sellers, categories, products), search and category
// listings, a product with its option picker, and a drop with `Buy now`.

import { $, all, api, enc, esc, every, known, live, locked, money, persist, problem, refocus, say, session, span, t, tabStore, uuid, when } from "/common/core.js";

/** To the log-in page, coming back here afterwards. */
const login = () => {
  say(t("need_login"));
  tabStore.set("after_login", location.hash);
  location.hash = "#/login";
};

/** A product's picture: its thumbnail where it has one the page may show (an `https:` or
 * same-site address, or an inline image: what the page's CSP allows), else its initial on a
 * tile. Decorative either way: the name is beside it. */
const thumb = (p, big = false) => /^(https:\/\/|\/(?![\/\\])|data:image\/)/i.test(p.thumbnail ?? "")
  ? `<img class="thumb${big ? " big" : ""}" src="${esc(p.thumbnail)}" alt="" loading="lazy" decoding="async">`
  : `<span class="thumb${big ? " big" : ""}" aria-hidden="true">${esc(p.name.trim()[0])}</span>`;

function productCard(p) {
  return `<a class="card" href="#/product/${enc(p.product_id)}">
    ${thumb(p)}
    <span class="name">${esc(p.name)}</span>
    <span>${esc(t("from", { p: money(p.price_from, p.currency) }))}</span>
    <span class="${p.in_stock ? "ok" : "muted"}">${t(p.in_stock ? "in_stock" : "out_of_stock")}</span></a>`;
}

function dropStatus(d, now) {
  if (d.status === "sold_out") return `<span class="tag muted">${t("sold_out_tag")}</span>`;
  if (d.status === "ended") return `<span class="tag muted">${t("ended")}</span>`;
  const start = Date.parse(d.starts_at);
  return now < start
    ? `<span class="tag soon">${t("upcoming")}</span> · <span class="num">${t("starts_in", { t: span(start - now) })}</span>`
    : `<span class="tag live">${t("live")}</span>`;
}

export async function home(main, current) {
  // The drops' product names come before the first paint: a name filled in later would grow
  // its card and push the page down.
  // (Each product once, however many drops sell it; one that fails leaves its drop unnamed.)
  const fetched = new Map();
  const productOf = (id) => {
    if (!fetched.has(id)) fetched.set(id, api(`/products/${enc(id)}`).catch(() => null));
    return fetched.get(id);
  };
  const named = (page) => Promise.all(page.items.filter((d) => d.product_id).map((d) =>
    productOf(d.product_id).then((p) => { d.name = p?.name; }))).then(() => page);
  const [live_, scheduled, best, categories, products] = await Promise.all([
    api("/drops?status=live&limit=10").then(named), api("/drops?status=scheduled&limit=10").then(named),
    api("/best-sellers?limit=8"), api("/categories"), api("/products?limit=20"),
  ]);
  if (!current()) return;
  const drops = [...live_.items, ...scheduled.items];
  main.innerHTML = `<h1 class="sr-only">Emporium</h1>
    ${drops.length ? `<h2>${t("drops")}</h2><div class="grid">${drops.map((d) => `
      <a class="drop" href="#/drop/${enc(d.drop_id)}" data-drop="${esc(d.drop_id)}">
        <div class="name">${esc(d.name ?? "")}</div><div class="status"></div>
        <div class="price">${money(d.price, d.currency)}</div>
        <div class="num" data-remaining>${t("remaining", { n: d.remaining, q: d.quantity })}</div>
      </a>`).join("")}</div>` : ""}
    ${best.items.length ? `<h2>${t("best_sellers")}</h2><div class="grid">${best.items.map(productCard).join("")}</div>` : ""}
    <h2>${t("categories")}</h2>
    <ul class="chips">${categories.items.map((c) => `<li><a href="#/category/${enc(c.category)}">${esc(c.category)} <span class="muted">${c.product_count}</span></a></li>`).join("")}</ul>
    <h2>${t("products")}</h2><div class="grid">${products.items.map(productCard).join("")}</div>`;
  every(() => {
    const now = Date.now();
    for (const d of drops) {
      const el = main.querySelector(`[data-drop="${CSS.escape(d.drop_id)}"] .status`);
      if (el) el.innerHTML = dropStatus(d, now);
    }
  });
  for (const d of drops) {
    live.on(`drop:${d.drop_id}`, (m) => {
      Object.assign(d, { remaining: m.remaining, status: m.status });
      const el = main.querySelector(`[data-drop="${CSS.escape(d.drop_id)}"] [data-remaining]`);
      const left = t("remaining", { n: m.remaining, q: d.quantity });
      if (el && el.textContent !== left) el.textContent = left;
    });
  }
}

export async function listing(main, { q, category, cursor }, current) {
  const params = new URLSearchParams({ limit: "20" });
  if (q) params.set("q", q);
  if (category) params.set("category", category);
  if (cursor) params.set("cursor", cursor);
  const page = await api(`/products?${params}`);
  if (!current()) return;
  const title = q ? t("results", { q }) : category;
  const next = new URLSearchParams({ ...(q && { q }), ...(category && { category }), cursor: page.next_cursor ?? "" });
  main.innerHTML = `<h1>${esc(title)}</h1>
    ${page.items.length ? `<div class="grid">${page.items.map(productCard).join("")}</div>` : `<p class="muted">${t("none")}</p>`}
    ${page.next_cursor ? `<p class="pager"><a class="button" href="#/search?${next}">${t("more")}</a></p>` : ""}`;
}

export async function product(main, id, current) {
  // Subscribed before the read: a change pushed meanwhile is read again afterwards.
  let p = null, missed = false;
  live.on(`product:${id}`, (m) => {
    const s = p?.skus.find((x) => x.sku_id === m.sku_id);
    if (!p) missed = true;
    else if (s) { s.available = m.available; show(); }
  });
  const fresh = async () => {
    const again = await api(`/products/${enc(id)}`);
    if (!current()) return;
    for (const s of p.skus) s.available = again.skus.find((x) => x.sku_id === s.sku_id)?.available ?? 0;
    show();
  };
  live.onResume(() => fresh().catch(() => {}));
  let wishlist, drops;
  // A drop of this product, live or coming, is where its price is lower and its units are:
  // the page says so (the SKU itself may read out of stock, its units held by the drop).
  const dropsOf = (status) => api(`/drops?${new URLSearchParams({ status, product_id: id, limit: "1" })}`).then((d) => d.items, () => []);
  [p, wishlist, drops] = await Promise.all([
    api(`/products/${enc(id)}`),
    session.token ? all("/users/me/wishlist").catch(() => ({ items: [] })) : { items: [] },
    Promise.all([dropsOf("live"), dropsOf("scheduled")]).then((both) => both.flat()),
  ]);
  if (!current()) return;
  const inDrop = drops[0];
  const dropNote = !inDrop ? "" : `<p class="drop-note"><a href="#/drop/${enc(inDrop.drop_id)}">${inDrop.status === "live"
    ? t("in_drop_live", { price: money(inDrop.price, inDrop.currency) })
    : t("in_drop_soon", { price: money(inDrop.price, inDrop.currency), at: when(inDrop.starts_at) })}</a></p>`;
  let wished = wishlist.items.some((w) => w.product_id === p.product_id);
  let adding = false;
  const axes = [...new Set(p.skus.flatMap((s) => Object.keys(s.options)))];
  const choice = Object.fromEntries(axes.map((a) => [a, p.skus[0].options[a]]));
  const chosen = () => p.skus.find((s) => axes.every((a) => s.options[a] === choice[a]));
  main.innerHTML = `<div class="row">${thumb(p, true)}
    <div><h1>${esc(p.name)}</h1><p class="muted">${esc(p.description)}</p>
    ${p.sales ? `<p class="muted">${t("sold_n", { n: p.sales })}</p>` : ""}${dropNote}</div></div>
    <form class="options" id="buy">${axes.map((a) => `<fieldset><legend>${esc(t("choose", { axis: known(`axis_${a}`) ? t(`axis_${a}`) : a }))}</legend>
      ${[...new Set(p.skus.map((s) => s.options[a]))].map((v) => `<label><input type="radio" name="${esc(a)}" value="${esc(v)}" ${choice[a] === v ? "checked" : ""}><span>${esc(v)}</span></label>`).join("")}</fieldset>`).join("")}
      <p class="price" id="price"></p><p id="stock" aria-live="polite"></p>
      <p class="row"><button class="primary" type="submit">${t("add_to_cart")}</button>
      <button type="button" id="wish" aria-pressed="${wished}">${t("wish")}</button></p></form>`;
  const show = () => {
    const s = chosen();
    $("#price", main).textContent = s ? money(s.price, p.currency) : "";
    $("#stock", main).textContent = s ? (s.available > 0 ? t("available", { n: s.available }) : t("out_of_stock")) : "";
    main.querySelector("button[type=submit]").disabled = adding || !s || s.available === 0;
    $("#wish", main).textContent = t(wished ? "wished" : "wish");
    $("#wish", main).setAttribute("aria-pressed", String(wished));
  };
  show();
  $("#buy", main).addEventListener("change", (e) => { choice[e.target.name] = e.target.value; show(); });
  $("#buy", main).addEventListener("submit", async (e) => {
    e.preventDefault();
    if (adding) return;
    if (!session.token) { login(); return; }
    const s = chosen();
    const button = e.submitter ?? e.target.querySelector("button[type=submit]");
    const focused = document.activeElement === button, who = session.user;
    adding = true;
    show();
    // The API sets a line's quantity, so an add reads the cart then writes one more: under one
    // lock for the browser's tabs, two tabs adding at once add two.
    // (each request given up after 15 s, so a hung one does not hold every tab's adds)
    const add = async () => {
      const cart = await api("/cart", { signal: AbortSignal.timeout?.(15000) });
      // Another account signed in meanwhile (the page is being drawn again for it): the
      // quantity read is not its cart's.
      if (session.user !== who) return null;
      const held = cart.items.find((l) => l.sku_id === s.sku_id)?.quantity ?? 0;
      return api(`/cart/items/${enc(s.sku_id)}`, { method: "PUT", body: { quantity: held + 1 }, signal: AbortSignal.timeout?.(15000) });
    };
    try {
      const after = await locked("emporium-cart", add);
      if (!after) return;
      say(t("added"));
      // (the header's count is the account's signed in now)
      if (session.user === who) document.dispatchEvent(new CustomEvent("cart", { detail: after }));
    } catch (err) { say(problem(err)); } finally {
      // Off a moment after the answer too: a double tap's second tap, landing just after a
      // fast answer, finds the button off instead of adding a second unit.
      await new Promise((r) => setTimeout(r, 600));
      adding = false;
      show();
      if (focused && current()) refocus(button);
    }
  });
  $("#wish", main).addEventListener("click", async () => {
    if (!session.token) { login(); return; }
    try {
      await api(`/users/me/wishlist/${enc(p.product_id)}`, { method: wished ? "DELETE" : "PUT" });
      wished = !wished;
      show();
    } catch (err) { say(problem(err)); }
  });
  if (missed) fresh().catch(() => {});
}

export async function drop(main, id, current) {
  // Subscribe first: nothing pushed between the read and the subscription is lost.
  let d = null, missed = false;
  live.on(`drop:${id}`, (m) => {
    if (!d) missed = true;
    else { Object.assign(d, { remaining: m.remaining, status: m.status }); show(); }
  });
  const fresh = async () => {
    const again = await api(`/drops/${enc(id)}`);
    if (current()) { Object.assign(d, { remaining: again.remaining, status: again.status }); show(); }
  };
  // After a reconnect the counts are read again; a press under way keeps its page.
  live.onResume(() => fresh().catch(() => {}));
  // A signed-in buyer's order ships to the profile's name, phone and address, shown here and
  // sent with the purchase so the order carries it.
  let me;
  [d, me] = await Promise.all([api(`/drops/${enc(id)}`), session.token ? api("/users/me").catch(() => null) : null]);
  if (!current()) return;
  const address = me?.phone && me?.address ? { name: me.name, phone: me.phone, address: me.address } : null;
  main.innerHTML = `<h1 id="drop-title">${t("drops")}</h1>
    <p id="drop-status"></p><p class="price">${money(d.price, d.currency)}</p>
    <p class="num" aria-live="polite" id="remaining"></p><p class="muted">${t("per_person", { n: d.per_user_limit })}</p>
    ${me ? `<p class="muted">${address ? esc(t("ships_to", { a: address.address })) : `${t("no_address")} <a href="#/account">${t("account")}</a>`}</p>` : ""}
    <p class="row"><button class="primary" id="buy-now" type="button">${t("buy_now")}</button><span id="outcome" role="status" aria-live="polite"></span></p>`;
  if (d.product_id) api(`/products/${enc(d.product_id)}`).then((p) => { if (current()) $("#drop-title", main).textContent = p.name; }).catch(() => {});
  // `pending` from a press until a moment after its answer: a double tap's second tap finds the
  // button off, whichever comes first, the answer or the tap.
  let pending = false;
  // The key of a press that got no answer (the connection was lost: it may have bought): the
  // next press is its retry, with the same key, so it finds that order instead of a second.
  let unanswered = null;
  function show() {
    if (!current()) return;
    const now = Date.now();
    $("#drop-status", main).innerHTML = dropStatus(d, now);
    const left = t("remaining", { n: d.remaining, q: d.quantity });
    if ($("#remaining", main).textContent !== left) $("#remaining", main).textContent = left;
    const open = d.status === "live" || (d.status === "scheduled" && now >= Date.parse(d.starts_at));
    // Off while nothing can be bought; while a press is pending it only says so (aria) and
    // ignores taps, keeping the keyboard's focus, which a disabled button would drop.
    $("#buy-now", main).disabled = !open || d.remaining === 0;
    $("#buy-now", main).setAttribute("aria-disabled", String(pending));
    $("#buy-now", main).setAttribute("aria-busy", String(pending));
  }
  every(show);
  if (missed) fresh().catch(() => {});
  let bought = null; // this page's purchase, if any
  $("#buy-now", main).addEventListener("click", async (e) => {
    if (pending) return;
    if (!session.token) { login(); return; }
    const focused = document.activeElement === e.currentTarget;
    pending = true;
    show();
    const outcome = (text, html = "") => { if (current()) { $("#outcome", main).textContent = text; $("#outcome", main).insertAdjacentHTML("beforeend", html); } };
    const payLink = () => (bought ? ` <a href="#/order/${enc(bought.order_id)}">${t("pay_now")}</a>` : "");
    // One key per press, and the same key on every retry of that press (busy answers and lost
    // connections alike, and the next press after one that got no answer): a press never buys
    // twice.
    const key = unanswered ?? uuid();
    unanswered = null;
    try {
      const order = await persist(
        () => api(`/drops/${enc(d.drop_id)}/purchase`, {
          method: "POST", body: { quantity: 1, ...(address && { shipping_address: address }) }, headers: { "idempotency-key": key },
        }),
        (err) => outcome(t(err.status === undefined ? "offline" : "retrying")),
      );
      bought = order;
      outcome(t("bought", { id: order.order_id, at: when(order.expires_at) }), payLink());
    } catch (err) {
      if (err.code === "sold_out") Object.assign(d, { remaining: 0, status: "sold_out" });
      const unknown = err.status === undefined || err.status >= 500;
      if (unknown) unanswered = key;
      // A press after a purchase (the limit reached) keeps the way to pay for it.
      outcome(unknown ? t("purchase_unknown") : problem(err), payLink());
    } finally {
      await new Promise((r) => setTimeout(r, 800));
      pending = false;
      show();
      if (focused && current()) refocus($("#buy-now", main));
    }
  });
}
