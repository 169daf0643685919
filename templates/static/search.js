// Search for the search page: Pagefind's index, built with the site, queried in the browser.
// The page works without this script (it then says how to browse instead).
const form = document.querySelector(".search-page-form");
const input = document.getElementById("search-q");
const status = document.getElementById("search-status");
const list = document.getElementById("search-results");
const siteRoot = new URL("../", import.meta.url);
let pagefind = null;

document.getElementById("search-nojs").hidden = true;

// Pagefind's excerpt is HTML with <mark> around matches; keep only its text and the marks.
function excerptNodes(html) {
  const doc = new DOMParser().parseFromString(html, "text/html");
  return Array.from(doc.body.childNodes, (node) => {
    if (node.nodeName === "MARK") {
      const mark = document.createElement("mark");
      mark.textContent = node.textContent;
      return mark;
    }
    return document.createTextNode(node.textContent);
  });
}

// A large site's index comes in shards, each its own Pagefind bundle: load the first,
// merge the others into it (pagefind/shards.json lists them).
async function load() {
  if (pagefind === null) {
    const index = new URL("pagefind/", siteRoot);
    const response = await fetch(new URL("shards.json", index));
    if (!response.ok) throw new Error(`no search index (${response.status})`);
    const [first, ...others] = (await response.json()).bundles;
    if (first === undefined) return null; // no claims yet
    const loaded = await import(new URL(`${first}pagefind.js`, index).href);
    await loaded.options({ baseUrl: siteRoot.pathname });
    for (const bundle of others) {
      await loaded.mergeIndex(new URL(bundle, index).pathname, { baseUrl: siteRoot.pathname });
    }
    pagefind = loaded;
  }
  return pagefind;
}

async function run(query) {
  list.replaceChildren();
  if (!query.trim()) {
    status.textContent = "";
    return;
  }
  status.textContent = "Searching…";
  let found;
  try {
    const engine = await load();
    found = engine === null ? { results: [] } : await engine.search(query);
  } catch (error) {
    status.textContent = "Search is not available on this copy of the site.";
    return;
  }
  const results = await Promise.all(found.results.slice(0, 20).map((r) => r.data()));
  status.textContent = results.length === 0
    ? `No fact-check matches “${query}”.`
    : `${found.results.length} fact-check${found.results.length === 1 ? "" : "s"} match “${query}”.`;
  for (const result of results) {
    const item = document.createElement("li");
    const heading = document.createElement("h2");
    const link = document.createElement("a");
    link.href = result.url;
    link.textContent = result.meta.title || result.url;
    heading.append(link);
    const excerpt = document.createElement("p");
    excerpt.append(...excerptNodes(result.excerpt));
    item.append(heading, excerpt);
    list.append(item);
  }
}

const query = new URLSearchParams(location.search).get("q") || "";
input.value = query;
const header = document.getElementById("site-search-q");
if (header) header.value = query;
form.addEventListener("submit", (event) => {
  event.preventDefault();
  const url = new URL(location.href);
  url.searchParams.set("q", input.value);
  history.replaceState(null, "", url);
  run(input.value);
});
run(query);
