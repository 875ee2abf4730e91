// The operator console: sign in with an operator key (kept in this tab's sessionStorage), find a
// person by any identity, draw their identity graph, show their data across channels, undo a
// merge. Only the public GraphQL API at /graphql, with the key; every error shows its code and
// traceId.
(function () {
  "use strict";

  var PERSON = "query Person($id: ID, $identity: IdentityInput) { user(id: $id, identity: $identity) {" +
    " id createdAt phone" +
    " identities { kind namespace value channel verified linkedAt linkedBy }" +
    " identityHistory { action kind namespace value rule source actor at userId mergeId }" +
    " merges { id survivorId absorbedId at undoneAt }" +
    " orders(first: 20) { totalCount nodes { channel sourceId status totalCents currency placedAt items { sku name quantity } } }" +
    " cart { items { sku quantity channel updatedAt } }" +
    " consents { purpose channel granted sourceChannel updatedAt }" +
    " consentHistory { purpose channel granted sourceChannel effectiveAt cause }" +
    " membership { tier since expiresAt sourceChannel points }" +
    " benefits { name } interests { tag weight }" +
    " behavior(first: 50) { nodes { channel type occurredAt } } } }";
  var CALLER = "{ caller { kind actor roles readsPii mayUnmerge } }";
  var UNMERGE = "mutation Unmerge($id: ID!) { unmerge(mergeId: $id) { id } }";
  var CHANNELS = ["MINI_PROGRAM", "OFFICIAL_ACCOUNT", "APP"];
  var CHANNEL_NAMES = { MINI_PROGRAM: "Mini program", OFFICIAL_ACCOUNT: "Official account", APP: "APP", NONE: "Troika" };
  var STORE = "troika.console.key";
  var when = window.TroikaGraph.when;
  var shortValue = window.TroikaGraph.shortValue;
  var state = { key: null, caller: null, user: null, drawn: null };

  function $(id) { return document.getElementById(id); }

  // Elements built from data with textContent only: nothing a record holds becomes markup.
  function h(tag, attrs) {
    var el = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") el.textContent = attrs[k];
      else if (k === "onclick") el.addEventListener("click", attrs[k]);
      else el.setAttribute(k, attrs[k]);
    });
    for (var i = 2; i < arguments.length; i++) if (arguments[i] != null) el.append(arguments[i]);
    return el;
  }

  function fill(el) {
    el.replaceChildren.apply(el, Array.prototype.slice.call(arguments, 1));
  }

  function table(el, head, rows) {
    fill(el, h("thead", {}, h("tr", {}, ...head.map(function (t) { return h("th", { text: t }); }))),
      h("tbody", {}, ...(rows.length ? rows : [[{ text: "none", colspan: head.length }]]).map(function (r) {
        return h("tr", {}, ...r.map(function (c) {
          if (c instanceof Node) return h("td", {}, c);
          return c && typeof c === "object" ? h("td", c) : h("td", {}, c == null ? "" : String(c));
        }));
      })));
  }

  function chip(channel) {
    var c = channel || "NONE";
    return h("span", { class: "chip " + c, text: CHANNEL_NAMES[c] });
  }

  function showError(err) {
    var box = $("error");
    box.hidden = false;
    fill(box, h("strong", { text: err.code || "ERROR" }), " " + err.message,
      err.traceId ? h("span", { class: "trace", text: " traceId " + err.traceId }) : null);
  }

  function notice(text) {
    var box = $("notice");
    box.hidden = !text;
    box.textContent = text || "";
  }

  async function gql(query, variables) {
    $("error").hidden = true;
    var response;
    try {
      response = await fetch("/graphql", {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/graphql-response+json, application/json",
          Authorization: "Bearer " + state.key },
        body: JSON.stringify({ query: query, variables: variables || {} }),
      });
    } catch (e) {
      throw { code: "NETWORK", message: "Troika did not answer: " + e.message };
    }
    var body = await response.json().catch(function () { return null; });
    if (!body) throw { code: "HTTP_" + response.status, message: "the answer was not JSON" };
    if (body.errors && body.errors.length) {
      var first = body.errors[0], ext = first.extensions || {};
      throw { code: ext.code, message: first.message, traceId: ext.traceId };
    }
    return body.data;
  }

  async function signIn(key) {
    state.key = key;
    try {
      state.caller = (await gql(CALLER)).caller;
    } catch (err) {
      state.key = null;
      sessionStorage.removeItem(STORE);
      showError(err);
      return;
    }
    if (state.caller.kind !== "operator") {
      showError({ code: "NOT_AN_OPERATOR", message: "the console is for operator keys; this is a " + state.caller.kind + " key" });
      state.key = null;
      return;
    }
    sessionStorage.setItem(STORE, key);
    $("sign-in").hidden = true;
    $("console").hidden = false;
    $("sign-out").hidden = false;
    $("who").textContent = state.caller.actor + " · " + state.caller.roles.join(", ");
    $("pii-note").textContent = state.caller.readsPii
      ? "This key reads phones in full; every answer that shows one is audited."
      : "Phones are masked: this key may not read PII.";
  }

  async function find(variables) {
    notice("");
    try {
      var user = (await gql(PERSON, variables)).user;
    } catch (err) {
      showError(err);
      return;
    }
    if (!user) {
      showError({ code: "NOT_FOUND", message: "nobody holds that identity" });
      $("person").hidden = true;
      return;
    }
    state.user = user;
    render(user);
  }

  function render(user) {
    $("person").hidden = false;
    $("graph-title").textContent = "user " + user.id;
    if (state.drawn) state.drawn.cy.destroy();
    $("detail").textContent = "";
    state.drawn = window.TroikaGraph.draw($("graph"), user, function (d) { $("detail").textContent = d; });
    window.troikaConsole.cy = state.drawn.cy;
    fill($("graph-text"), ...state.drawn.text.map(function (t) { return h("li", { text: t }); }));
    renderSummary(user);
    renderMerges(user);
    table($("orders"), ["Channel", "Order", "Status", "Total", "Placed", "Items"], user.orders.nodes.map(function (o) {
      return [chip(o.channel), o.sourceId, o.status, (o.totalCents / 100).toFixed(2) + " " + o.currency, when(o.placedAt),
        o.items.map(function (i) { return (i.name || i.sku) + " × " + i.quantity; }).join(", ")];
    }));
    table($("cart"), ["SKU", "Qty", "Channel", "Updated"], user.cart.items.map(function (i) {
      return [i.sku, i.quantity, chip(i.channel), when(i.updatedAt)];
    }));
    table($("consents"), ["Purpose", "For", "Granted", "Set in", "When"], user.consents.map(function (c) {
      return [c.purpose, c.channel ? CHANNEL_NAMES[c.channel] : "every channel", c.granted ? "yes" : "no", chip(c.sourceChannel), when(c.updatedAt)];
    }));
    renderTimeline(user);
  }

  function renderSummary(user) {
    var m = user.membership;
    var rows = [
      ["User", user.id + ", first seen " + when(user.createdAt)],
      ["Phone", user.phone || "none"],
      ["Identities", String(user.identities.length)],
      ["Membership", m ? m.tier + " since " + when(m.since) + " (opened in " + CHANNEL_NAMES[m.sourceChannel] + ")" : "none"],
      ["Points", m ? String(m.points) : "0"],
      ["Benefits", user.benefits.map(function (b) { return b.name; }).join("、") || "none"],
      ["Interests", user.interests.map(function (i) { return i.tag + " " + i.weight.toFixed(2); }).join(", ") || "none"],
    ];
    fill($("summary"), ...rows.flatMap(function (r) { return [h("dt", { text: r[0] }), h("dd", { text: r[1] })]; }));
  }

  function renderMerges(user) {
    var items = user.merges.map(function (m) {
      var text = "#" + m.id + ": user " + m.absorbedId + " into user " + m.survivorId + ", " + when(m.at);
      if (m.undoneAt) return h("li", { class: "undone" }, text + " — undone " + when(m.undoneAt));
      var undo = state.caller.mayUnmerge
        ? h("button", { type: "button", class: "danger", "data-merge": m.id, text: "Undo merge #" + m.id,
            onclick: function () { unmerge(m); } })
        : h("span", { class: "muted", text: " (undoing needs the operator role)" });
      return h("li", {}, text + " ", undo);
    });
    fill($("merges"), ...(items.length ? items : [h("li", { class: "muted", text: "no merges" })]));
  }

  async function unmerge(m) {
    if (!window.confirm("Undo merge #" + m.id + "? User " + m.absorbedId + " gets back the identities it brought.")) return;
    try {
      var users = (await gql(UNMERGE, { id: m.id })).unmerge;
    } catch (err) {
      showError(err);
      return;
    }
    await find({ id: state.user.id });
    notice("Merge #" + m.id + " undone: user " + users[1].id + " is a person of its own again.");
  }

  function renderTimeline(user) {
    var rows = [];
    var channelOf = {};
    user.identities.forEach(function (i) { channelOf[i.kind + "|" + (i.namespace || "") + "|" + i.value] = i.channel; });
    user.identityHistory.forEach(function (e) {
      rows.push([e.at, channelOf[e.kind + "|" + (e.namespace || "") + "|" + e.value],
        e.action + " " + e.kind + " " + shortValue(e.value) + " → user " + e.userId + " (" + e.rule + ")",
        e.rule + ": " + e.source + ", by " + e.actor]);
    });
    user.merges.forEach(function (m) {
      rows.push([m.at, null, "merge #" + m.id + ": user " + m.absorbedId + " into user " + m.survivorId]);
      if (m.undoneAt) rows.push([m.undoneAt, null, "merge #" + m.id + " undone"]);
    });
    user.orders.nodes.forEach(function (o) { rows.push([o.placedAt, o.channel, "order " + o.sourceId + " " + o.status]); });
    user.behavior.nodes.forEach(function (b) { rows.push([b.occurredAt, b.channel, b.type]); });
    user.cart.items.forEach(function (i) { rows.push([i.updatedAt, i.channel, "cart " + i.sku + " × " + i.quantity]); });
    user.consentHistory.forEach(function (c) {
      rows.push([c.effectiveAt, c.sourceChannel, "consent " + c.purpose + (c.granted === null ? " cleared" : c.granted ? " granted" : " withdrawn") + " (" + c.cause + ")"]);
    });
    rows.sort(function (a, b) { return a[0] < b[0] ? 1 : a[0] > b[0] ? -1 : 0; });
    var lanes = CHANNELS.concat(["NONE"]);
    table($("timeline"), ["When"].concat(lanes.map(function (c) { return CHANNEL_NAMES[c]; })), rows.slice(0, 200).map(function (r) {
      return [when(r[0])].concat(lanes.map(function (c) {
        return (r[1] || "NONE") === c ? { class: "lane " + c, text: r[2], title: r[3] || r[2] } : "";
      }));
    }));
  }

  function parseFind() {
    var kind = $("kind").value, value = $("value").value.trim();
    if (kind === "ID") return { id: value };
    var identity = { kind: kind, value: value };
    if (kind === "OPENID" || kind === "EXTERNAL") identity.namespace = $("namespace").value.trim();
    return { identity: identity };
  }

  window.troikaConsole = { cy: null, find: find };
  $("sign-in").addEventListener("submit", function (ev) { ev.preventDefault(); signIn($("key").value.trim()); });
  $("find").addEventListener("submit", function (ev) { ev.preventDefault(); find(parseFind()); });
  $("kind").addEventListener("change", function () {
    var k = $("kind").value;
    $("namespace").hidden = !(k === "OPENID" || k === "EXTERNAL");
  });
  $("sign-out").addEventListener("click", function () { sessionStorage.removeItem(STORE); location.reload(); });
  var kept = sessionStorage.getItem(STORE);
  if (kept) signIn(kept);
})();
