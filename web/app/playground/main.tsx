// The offline GraphQL playground at /playground: GraphiQL with every asset
// (editor workers and fonts included) bundled by Vite and served by the
// binary, so it works with no internet and under a 'self'-only CSP.
// Queries and mutations go over POST to /query; subscriptions over
// graphql-ws on the same path.
import 'graphiql/setup-workers/vite';
import 'graphiql/style.css';
import './playground.css';
import { createGraphiQLFetcher } from '@graphiql/toolkit';
import { GraphiQL } from 'graphiql';
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { examples } from './examples';

const url = new URL('/query', window.location.href);
const fetcher = createGraphiQLFetcher({
  url: url.href,
  subscriptionUrl: url.href.replace(/^http/, 'ws'),
});

// GraphiQL fills the variables editor of the first tab from
// initialVariables, not from defaultTabs; once tabs are stored (a later
// visit), they are restored as the person left them.
const firstVisit = localStorage.getItem('graphiql:tabState') === null;

createRoot(document.getElementById('graphiql')!).render(
  <StrictMode>
    <GraphiQL
      fetcher={fetcher}
      defaultTabs={examples}
      initialVariables={firstVisit ? examples[0].variables : undefined}
      defaultEditorToolsVisibility="variables"
    />
  </StrictMode>,
);
