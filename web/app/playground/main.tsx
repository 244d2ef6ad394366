// The offline GraphQL playground at /playground: GraphiQL with every asset
// (editor workers and fonts included) bundled by Vite and served by the
// binary, so it works with no internet and under a 'self'-only CSP.
// Queries and mutations go over POST to /query; subscriptions over
// graphql-ws on the same path.
import 'graphiql/setup-workers/vite';
import 'graphiql/style.css';
import './playground.css';
import { createGraphiQLFetcher, type Storage } from '@graphiql/toolkit';
import { GraphiQL } from 'graphiql';
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { examples } from './examples';

const url = new URL('/query', window.location.href);
const fetcher = createGraphiQLFetcher({
  url: url.href,
  subscriptionUrl: url.href.replace(/^http/, 'ws'),
});

// GraphiQL keeps its tabs (query, variables, headers if asked to), the
// history plugin's operations with their variables and headers (asked or
// not), and the editors' text in its storage, localStorage unless told
// otherwise. Here that is the service's own origin, which the web app
// shares: a password, watchToken, verification token or bearer token
// tried here stayed on disk for good, readable by any script of the
// origin. Keeping the queries and dropping the rest would not do: the
// README's examples put the password in the query itself. So GraphiQL
// gets a Storage of this page's memory only (its documented `storage`
// prop), not sessionStorage, which the web app's scripts would read too
// once the tab goes there: a reload starts again from the examples, and
// closing the page forgets everything.
function memoryStorage(): Storage {
  const items = new Map<string, string>();
  return {
    getItem: (key) => items.get(key) ?? null,
    setItem: (key, value) => void items.set(key, String(value)),
    removeItem: (key) => void items.delete(key),
    clear: () => items.clear(),
    get length() {
      return items.size;
    },
  };
}

// Earlier builds left GraphiQL's keys (all "graphiql:…") in localStorage;
// they may hold secrets, so they go. (A browser that blocks storage
// throws on the first touch; the playground needs none.)
try {
  for (const key of Object.keys(localStorage)) {
    if (key.startsWith('graphiql:')) localStorage.removeItem(key);
  }
} catch {}

createRoot(document.getElementById('graphiql')!).render(
  <StrictMode>
    <GraphiQL
      fetcher={fetcher}
      storage={memoryStorage()}
      defaultTabs={examples}
      // GraphiQL fills the first tab's variables editor from
      // initialVariables, not from defaultTabs; with nothing stored, every
      // load is a first visit.
      initialVariables={examples[0].variables}
      defaultEditorToolsVisibility="variables"
      // Its "Persist headers" setting promises headers that survive a
      // reload, which this storage never keeps.
      showPersistHeadersSettings={false}
    />
  </StrictMode>,
);
