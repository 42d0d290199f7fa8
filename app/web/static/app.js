// ctxsearch's web page: loads each view's HTML from /ui into <main>, with the tab's API key.
// Links and GET forms inside the page navigate without a reload (history.pushState).
(function () {
  "use strict";

  var KEY = "ctxsearch.apiKey";
  var PAGE = /^\/(?:$|search$|status$|projects\/.)/;
  var main = document.getElementById("main");
  var announce = document.getElementById("announce");
  var forget = document.getElementById("forget-key");
  var seq = 0;

  function storedKey() {
    try {
      return window.sessionStorage.getItem(KEY);
    } catch (e) {
      return null;
    }
  }

  function setKey(key) {
    try {
      if (key) window.sessionStorage.setItem(KEY, key);
      else window.sessionStorage.removeItem(KEY);
    } catch (e) {
      /* storage disabled: the key lasts until the next load */
    }
    forget.hidden = !storedKey();
  }

  function setTitle(view) {
    var title = view && view.getAttribute("data-title");
    document.title = title ? title + " · ctxsearch" : "ctxsearch";
  }

  function settle(focus, hash) {
    main.removeAttribute("aria-busy");
    var view = main.querySelector(".view");
    setTitle(view);
    announce.textContent = document.title;
    var target = hash ? document.getElementById(hash.slice(1)) : null;
    if (target) {
      if (!target.hasAttribute("tabindex")) target.setAttribute("tabindex", "-1");
      target.scrollIntoView({ block: "start" });
      target.focus({ preventScroll: true });
      return;
    }
    if (focus) {
      window.scrollTo(0, 0);
      var heading = main.querySelector("h1");
      (heading || main).focus({ preventScroll: true });
    }
  }

  function fromTemplate(id) {
    var node = document.getElementById(id).content.cloneNode(true);
    main.replaceChildren(node);
  }

  function showMessage(title, message) {
    fromTemplate("message-template");
    main.querySelector("[data-slot=title]").textContent = title;
    main.querySelector("[data-slot=message]").textContent = message;
    main.querySelector(".view").setAttribute("data-title", title);
    settle(true, "");
  }

  function showKeyForm(message) {
    fromTemplate("key-form-template");
    var slot = main.querySelector("[data-slot=message]");
    if (message) {
      slot.textContent = message;
      slot.hidden = false;
    }
    settle(false, "");
    document.getElementById("api-key").focus();
  }

  function errorText(response) {
    return response.text().then(function (body) {
      try {
        var parsed = JSON.parse(body);
        if (parsed && typeof parsed.error === "string") return parsed.error;
      } catch (e) {
        /* not JSON */
      }
      return body.slice(0, 500) || response.statusText;
    });
  }

  function load(url, focus) {
    var mine = ++seq;
    main.setAttribute("aria-busy", "true");
    announce.textContent = "Loading…";
    var headers = { Accept: "text/html" };
    var key = storedKey();
    if (key) headers.Authorization = "Bearer " + key;
    return fetch("/ui" + url.pathname + url.search, { headers: headers, cache: "no-store", credentials: "omit" })
      .then(function (response) {
        if (mine !== seq) return null;
        var type = response.headers.get("content-type") || "";
        if (response.status === 401) {
          return errorText(response).then(function (text) {
            if (mine !== seq) return;
            if (key) setKey(null);
            showKeyForm(key ? "That key was not accepted: " + text : "");
          });
        }
        if (type.indexOf("text/html") === 0) {
          return response.text().then(function (html) {
            if (mine !== seq) return;
            main.innerHTML = html;
            settle(focus, url.hash);
          });
        }
        return errorText(response).then(function (text) {
          if (mine !== seq) return;
          showMessage(response.status === 429 ? "Too many requests" : "Error " + response.status, text);
        });
      })
      .catch(function (error) {
        if (mine === seq) showMessage("The service did not answer", String(error && error.message ? error.message : error));
      });
  }

  function navigate(url) {
    history.pushState(null, "", url.pathname + url.search + url.hash);
    load(url, true);
  }

  document.addEventListener("click", function (event) {
    if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) {
      return;
    }
    var link = event.target.closest ? event.target.closest("a[href]") : null;
    if (!link || link.target || link.hasAttribute("download")) return;
    var url = new URL(link.href, window.location.href);
    if (url.origin !== window.location.origin || !PAGE.test(url.pathname)) return;
    if (url.hash && url.pathname === window.location.pathname && url.search === window.location.search) return;
    event.preventDefault();
    navigate(url);
  });

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.id === "key-form") {
      event.preventDefault();
      var value = form.elements.key.value.trim();
      if (!value) return;
      setKey(value);
      load(new URL(window.location.href), true);
      return;
    }
    if ((form.getAttribute("method") || "get").toLowerCase() !== "get") return;
    var url = new URL(form.getAttribute("action") || window.location.pathname, window.location.href);
    if (url.origin !== window.location.origin || !PAGE.test(url.pathname)) return;
    event.preventDefault();
    var params = new URLSearchParams();
    new FormData(form).forEach(function (value, name) {
      if (typeof value === "string" && value !== "") params.append(name, value);
    });
    url.search = params.toString();
    url.hash = "";
    navigate(url);
  });

  window.addEventListener("popstate", function () {
    load(new URL(window.location.href), true);
  });

  forget.addEventListener("click", function () {
    setKey(null);
    load(new URL(window.location.href), true);
  });

  setKey(storedKey());
  load(new URL(window.location.href), false);
})();
