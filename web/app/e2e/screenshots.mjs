// Saves screenshots of each screen at desktop and phone widths, in light
// and dark, to docs/screenshots/. Run with `npm run screenshots` after a
// visible change and commit the PNGs the README shows.
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { apiRegister, latestLink, launch, openPage, signUp, startServer, uniqueEmail } from './helpers.mjs';

const out = resolve(import.meta.dirname, '../../../docs/screenshots');
mkdirSync(out, { recursive: true });
const sizes = { desktop: { width: 1280, height: 800 }, phone: { width: 360, height: 740 } };

const server = await startServer({ TOKEN_TTL: '3s', RESEND_COOLDOWN: '60s' });
const browser = await launch();
try {
  for (const [size, viewport] of Object.entries(sizes)) {
    for (const colorScheme of ['light', 'dark']) {
      const shot = async (page, name) => {
        const file = join(out, `${name}-${size}-${colorScheme}.png`);
        await page.screenshot({ path: file, fullPage: true });
        console.log(file);
      };
      const email = uniqueEmail('ada');
      const p = await openPage(browser, { viewport, colorScheme });
      await p.goto(server.url + '/');
      await p.getByLabel('Email', { exact: true }).fill(email);
      await p.getByLabel('Password', { exact: true }).fill('correct horse');
      await p.getByLabel('Password', { exact: true }).blur();
      await shot(p, 'signup');
      await signUp(p, server, email);
      await p.getByText('Live', { exact: true }).waitFor();
      await p.locator('#resend').click();
      await p.getByText(/Resend in \d+ s/).waitFor();
      await shot(p, 'inbox');

      const link = await latestLink(server, email);
      const b = await openPage(browser, { viewport, colorScheme });
      await b.goto(link);
      await b.getByRole('button', { name: 'Confirm my email' }).waitFor();
      await shot(b, 'confirm');
      await b.getByRole('button', { name: 'Confirm my email' }).click();
      await b.getByRole('heading', { name: 'Email verified' }).waitFor();
      await shot(b, 'confirmed');
      await p.getByText('Your email is verified.').waitFor();
      await shot(p, 'verified');

      if (colorScheme === 'light') {
        const late = uniqueEmail('late');
        await apiRegister(server, late);
        const old = await latestLink(server, late);
        await new Promise((r) => setTimeout(r, 3100));
        const e = await openPage(browser, { viewport, colorScheme });
        await e.goto(old);
        await e.getByRole('button', { name: 'Confirm my email' }).click();
        await e.getByRole('heading', { name: 'This link has expired' }).waitFor();
        await shot(e, 'expired');
        const d = await openPage(browser, { viewport, colorScheme });
        await d.goto(server.url + '/dev/mail');
        await shot(d, 'devmail');
      }
    }
  }
} finally {
  await browser.close();
  await server.stop();
}
