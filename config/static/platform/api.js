// The pages' one way to call the REST API: same-origin session cookie, CSRF header, and the
// API's error envelope ({"error": {"code", "message", "details"}}) turned into an ApiError.
"use strict";

class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `request failed (${status})`);
    this.status = status;
    this.code = error.code || "error";
    this.details = error.details || {};
  }

  // Message plus the per-field details, as one readable line.
  describe() {
    const parts = [];
    const walk = (value, prefix) => {
      if (Array.isArray(value)) value.forEach((v) => walk(v, prefix));
      else if (value && typeof value === "object") {
        Object.entries(value).forEach(([k, v]) => walk(v, prefix ? `${prefix}.${k}` : k));
      } else if (value !== undefined && value !== null) parts.push(prefix ? `${prefix}: ${value}` : `${value}`);
    };
    walk(this.details, "");
    return parts.length ? `${this.message} (${parts.join("; ")})` : this.message;
  }
}

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

async function api(method, url, body) {
  const options = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (method !== "GET") options.headers["X-CSRFToken"] = csrfToken();
  if (body instanceof FormData) options.body = body;
  else if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(url, options);
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch (_) {
    data = null;
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

// Build an element: el("li", {class: "x", onclick: f}, "text", child, ...).
function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  Object.entries(attributes || {}).forEach(([name, value]) => {
    if (value === undefined || value === null || value === false) return;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "class") node.className = value;
    else node.setAttribute(name, value === true ? "" : value);
  });
  children.flat().forEach((child) => {
    if (child === undefined || child === null || child === false) return;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  });
  return node;
}

window.platformApi = { api, ApiError, el };
