// The segment builder (人群圈选): edits the rule tree held as JSON in #rule-json and fires "rule-changed" on the form,
// which htmx turns into a debounced POST of the tree for the live count. The server validates; this only builds.
(function () {
  "use strict";

  function init() {
    var form = document.getElementById("segment-form");
    if (!form) return;
    var field = document.getElementById("rule-json");
    var root = document.getElementById("rule-editor");
    var opts = JSON.parse(document.getElementById("builder-options").textContent);
    var t = opts.labels;
    var tree;
    try { tree = JSON.parse(field.value); } catch (e) { tree = null; }
    if (!tree || !tree.op) tree = { op: "and", rules: [] };
    if (tree.op !== "and" && tree.op !== "or") tree = { op: "and", rules: [tree] };

    function changed() {
      field.value = JSON.stringify(tree);
      form.dispatchEvent(new CustomEvent("rule-changed", { bubbles: true }));
    }

    function el(tag, attrs, children) {
      var node = document.createElement(tag);
      Object.keys(attrs || {}).forEach(function (k) {
        if (k === "text") node.textContent = attrs[k];
        else node.setAttribute(k, attrs[k]);
      });
      (children || []).forEach(function (c) { node.appendChild(c); });
      return node;
    }

    function select(choices, value, onChange, name) {
      var s = el("select", { "data-field": name || "" });
      choices.forEach(function (c) {
        var o = el("option", { value: String(c[0]), text: c[1] });
        if (String(c[0]) === String(value)) o.selected = true;
        s.appendChild(o);
      });
      s.addEventListener("change", function () { onChange(s.value); });
      return s;
    }

    function input(value, onChange, name, type) {
      var i = el("input", { type: type || "text", value: value === undefined ? "" : String(value), "data-field": name, size: "10" });
      i.addEventListener("input", function () { onChange(i.value); });
      return i;
    }

    function parse(kind, text) {
      var parts = String(text).split(/[,，、]/).map(function (s) { return s.trim(); }).filter(Boolean);
      var conv = function (s) { return kind === "number" && /^-?\d+$/.test(s) ? parseInt(s, 10) : s; };
      return parts.map(conv);
    }

    function valueFor(kind, cmp, text) {
      if (cmp === "in" || cmp === "between") return parse(kind, text);
      return parse(kind, text)[0] === undefined ? "" : parse(kind, text)[0];
    }

    function show(value) { return Array.isArray(value) ? value.join(", ") : (value === undefined ? "" : value); }

    var defaults = {
      has_tag: function () { return { op: "has_tag", tag_id: opts.tags.length ? opts.tags[0][0] : 0 }; },
      attr: function () { return { op: "attr", field: "city", cmp: "eq", value: "" }; },
      lifecycle: function () { return { op: "lifecycle", stages: [opts.stages[0][0]] }; },
      event_count: function () { return { op: "event_count", type: opts.events[0][0], cmp: "gte", value: 1, days: 30 }; },
      orders: function () { return { op: "orders", measure: "count", cmp: "gte", value: 1 }; },
      follow: function () { return { op: "follow", store_ids: opts.stores.length ? [opts.stores[0][0]] : [] }; },
    };

    function condition(node, replace) {
      var kind = node.op === "not_has_tag" ? "has_tag" : node.op;
      var row = el("div", { class: "rule-condition", "data-op": node.op });
      row.appendChild(select(opts.kinds, kind, function (v) { replace(defaults[v]()); render(); changed(); }, "kind"));
      var set = function (k, v) { node[k] = v; changed(); };
      if (kind === "has_tag") {
        row.appendChild(select([["has_tag", t.has], ["not_has_tag", t.has_not]], node.op, function (v) { node.op = v; changed(); }, "has"));
        row.appendChild(select(opts.tags, node.tag_id, function (v) { set("tag_id", parseInt(v, 10)); }, "tag_id"));
      } else if (kind === "attr") {
        var fieldKind = opts.attributes[node.field] || "text";
        row.appendChild(select(opts.attribute_choices, node.field, function (v) { node.field = v; node.cmp = "eq"; node.value = ""; render(); changed(); }, "field"));
        row.appendChild(select(opts.cmps, node.cmp, function (v) { node.cmp = v; node.value = valueFor(fieldKind, v, show(node.value)); changed(); }, "cmp"));
        row.appendChild(input(show(node.value), function (v) { set("value", valueFor(fieldKind, node.cmp, v)); }, "value"));
      } else if (kind === "lifecycle") {
        opts.stages.forEach(function (s) {
          var box = el("input", { type: "checkbox", value: s[0], "data-stage": s[0] });
          box.checked = node.stages.indexOf(s[0]) >= 0;
          box.addEventListener("change", function () {
            node.stages = opts.stages.map(function (x) { return x[0]; }).filter(function (x) {
              return x === s[0] ? box.checked : node.stages.indexOf(x) >= 0;
            });
            changed();
          });
          row.appendChild(el("label", { class: "check" }, [box, document.createTextNode(s[1])]));
        });
      } else if (kind === "event_count") {
        row.appendChild(select(opts.events, node.type, function (v) { set("type", v); }, "type"));
        row.appendChild(select(opts.count_cmps, node.cmp, function (v) { node.cmp = v; node.value = valueFor("number", v, show(node.value)); changed(); }, "cmp"));
        row.appendChild(input(show(node.value), function (v) { set("value", valueFor("number", node.cmp, v)); }, "value"));
        row.appendChild(el("span", { text: t.in_last }));
        row.appendChild(input(node.days, function (v) { set("days", /^\d+$/.test(v) ? parseInt(v, 10) : v); }, "days"));
        row.appendChild(el("span", { text: t.days }));
      } else if (kind === "orders") {
        row.appendChild(select(opts.measures, node.measure, function (v) { node.measure = v; node.cmp = v === "last_paid" ? "within_days" : "gte"; node.value = v === "last_paid" ? 30 : 1; render(); changed(); }, "measure"));
        var cmps = node.measure === "last_paid" ? opts.date_cmps : opts.count_cmps;
        var vk = node.measure === "last_paid" && node.cmp !== "within_days" ? "text" : "number";
        row.appendChild(select(cmps, node.cmp, function (v) { node.cmp = v; render(); changed(); }, "cmp"));
        row.appendChild(input(show(node.value), function (v) { set("value", valueFor(vk, node.cmp, v)); }, "value"));
        row.appendChild(select([["", t.any_shop]].concat(opts.shops), node.shop || "", function (v) { if (v) node.shop = v; else delete node.shop; changed(); }, "shop"));
      } else if (kind === "follow") {
        var ms = el("select", { multiple: "multiple", "data-field": "store_ids" });
        opts.stores.forEach(function (s) {
          var o = el("option", { value: String(s[0]), text: s[1] });
          o.selected = (node.store_ids || []).indexOf(s[0]) >= 0;
          ms.appendChild(o);
        });
        ms.addEventListener("change", function () {
          node.store_ids = Array.prototype.filter.call(ms.options, function (o) { return o.selected; }).map(function (o) { return parseInt(o.value, 10); });
          changed();
        });
        row.appendChild(ms);
      }
      return row;
    }

    function group(node, depth, remove) {
      var box = el("div", { class: "rule-group", "data-depth": String(depth) });
      var head = el("div", { class: "rule-group-head" });
      head.appendChild(select([["and", t.all], ["or", t.any]], node.op, function (v) { node.op = v; changed(); }, "group-op"));
      var addCond = el("button", { type: "button", class: "btn btn-sm", "data-action": "add-condition", text: t.add_condition });
      addCond.addEventListener("click", function () { node.rules.push(defaults.has_tag()); render(); changed(); });
      head.appendChild(addCond);
      if (depth < 3) {
        var addGroup = el("button", { type: "button", class: "btn btn-sm", "data-action": "add-group", text: t.add_group });
        addGroup.addEventListener("click", function () { node.rules.push({ op: "or", rules: [defaults.has_tag()] }); render(); changed(); });
        head.appendChild(addGroup);
      }
      if (remove) {
        var del = el("button", { type: "button", class: "btn btn-sm btn-ghost", text: t.remove });
        del.addEventListener("click", function () { remove(); render(); changed(); });
        head.appendChild(del);
      }
      box.appendChild(head);
      node.rules.forEach(function (child, i) {
        var line = el("div", { class: "rule-line" });
        var negated = child.op === "not";
        var inner = negated ? child.rule : child;
        var notBox = el("input", { type: "checkbox", "data-field": "not" });
        notBox.checked = negated;
        notBox.addEventListener("change", function () {
          node.rules[i] = notBox.checked ? { op: "not", rule: inner } : inner;
          render(); changed();
        });
        line.appendChild(el("label", { class: "check" }, [notBox, document.createTextNode(t.not)]));
        var replace = function (fresh) { node.rules[i] = negated ? { op: "not", rule: fresh } : fresh; };
        var drop = function () { node.rules.splice(i, 1); };
        if (inner.op === "and" || inner.op === "or") {
          line.appendChild(group(inner, depth + 1, drop));
        } else {
          line.appendChild(condition(inner, replace));
          var x = el("button", { type: "button", class: "btn btn-sm btn-ghost", "data-action": "remove", text: "×" });
          x.addEventListener("click", function () { drop(); render(); changed(); });
          line.appendChild(x);
        }
        box.appendChild(line);
      });
      return box;
    }

    function render() {
      root.innerHTML = "";
      root.appendChild(group(tree, 1, null));
      field.value = JSON.stringify(tree);
    }

    render();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
