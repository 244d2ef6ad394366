// A few DOM helpers: the app is small enough that a framework would weigh
// more than the app itself.

type Attrs = Record<string, string | boolean | number | EventListener | undefined>;
type Child = Node | string | null | undefined | false;

/** Creates an element: h('button', { type: 'submit', onclick: f }, 'Go'). */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  for (const c of children) if (c) el.append(c);
  return el;
}

/** An email address in bold. The name with its @ and the domain are each
 * kept whole on a line (inline blocks), so it wraps after the @ rather than
 * at a hyphen or in the middle of a number; only a part longer than the
 * whole line breaks anywhere (overflow-wrap in the stylesheet). */
export function emailAddress(email: string, attrs: Attrs = {}): HTMLElement {
  const at = email.lastIndexOf('@');
  const parts = at < 0 ? [email] : [h('span', {}, email.slice(0, at + 1)), h('wbr'), h('span', {}, email.slice(at + 1))];
  return h('strong', { ...attrs, class: 'address' }, ...parts);
}

/** Replaces the page's content and moves focus to its heading, so screen
 * readers and keyboard users start at the top of the new screen. */
export function show(...children: Child[]): void {
  // The room holdStill made below the last screen is not this one's.
  document.body.style.minHeight = '';
  const app = document.getElementById('app')!;
  app.replaceChildren(...(children.filter(Boolean) as Node[]));
  const heading = app.querySelector('h1');
  if (heading) {
    heading.tabIndex = -1;
    heading.focus();
  }
}

/**
 * Runs `change`, which may hide or disable what holds the keyboard focus
 * (a refusal hides the code field the person was typing in); if it did,
 * focus moves to `to()` rather than falling to the page body, where a
 * keyboard or screen-reader user would have to find their way back.
 */
export function keepFocus(change: () => void, to: () => HTMLElement | null | undefined): void {
  const had = document.activeElement;
  change();
  if (!(had instanceof HTMLElement) || had === document.body) return;
  const gone = !had.isConnected || had.closest('[hidden]') !== null || (had as HTMLButtonElement).disabled === true;
  if (gone) to()?.focus();
}

// A mouse button (or a tap's) held down on the page, and what waits for
// its release.
let pressing = false;
const afterRelease: (() => void)[] = [];
addEventListener('mousedown', () => (pressing = true), true);
addEventListener('mouseup', () => {
  pressing = false;
  // After the release's click, which follows mouseup in the same task.
  if (afterRelease.length) setTimeout(() => afterRelease.splice(0).forEach((f) => f()));
}, true);

/**
 * Runs `change` now or, if a press is under way, once it is released and
 * its click done. For what a field does when it is left: a press on a
 * button leaves the field, and a line shown then (an error or a hint that
 * wraps) would move the button from under the pointer before the release,
 * and the click would be lost.
 */
export function afterPress(change: () => void): void {
  if (pressing) afterRelease.push(change);
  else change();
}

/**
 * Runs `change`, which shows, changes or takes away a message above
 * `anchor` (a hint or an error under a field, above the form's button),
 * and then scrolls the page by as much as that moved `anchor`, so that it
 * stays where it was on the screen: a pointer or finger on the button is
 * still on it, however many lines the message takes at the screen's width.
 * What is above the message moves instead, as the browser's own scroll
 * anchoring would do if the page were not at its top (where it does
 * nothing). A page too short to scroll that far gets the room below it
 * (a taller body) until the screen changes (show) or the message goes.
 */
export function holdStill(anchor: HTMLElement, change: () => void): void {
  const before = anchor.getBoundingClientRect().top;
  change();
  if (!anchor.isConnected) return;
  const moved = anchor.getBoundingClientRect().top - before;
  if (!moved) return;
  const to = Math.max(0, scrollY + moved);
  const body = document.body;
  if (to > document.documentElement.scrollHeight - innerHeight) body.style.minHeight = `calc(100vh + ${to}px)`;
  scrollTo(scrollX, to);
  // Less room once a message went: no more than the scroll needs.
  if (moved < 0 && body.style.minHeight) body.style.minHeight = scrollY > 0 ? `calc(100vh + ${scrollY}px)` : '';
}

/** Says something to screen readers through the polite live region. */
export function announce(text: string): void {
  const el = document.getElementById('announcer')!;
  el.textContent = '';
  // A fresh node after clearing makes every announcement heard, even a repeat.
  requestAnimationFrame(() => (el.textContent = text));
}

/**
 * Marks `button` unavailable, or available again, without the `disabled`
 * attribute: a disabled button drops the keyboard focus to the page body,
 * while `aria-disabled` keeps it where it was and still tells a screen
 * reader the button is unavailable. Clicks (and so form submission, which
 * starts with a click on the submit button) are ignored while it lasts.
 */
export function setUnavailable(button: HTMLButtonElement, on: boolean): void {
  if (!button.dataset.guarded) {
    button.dataset.guarded = 'true';
    // A capturing listener on the button runs before its own listeners.
    button.addEventListener('click', (ev) => {
      if (!unavailable(button)) return;
      ev.preventDefault();
      ev.stopImmediatePropagation();
    }, { capture: true });
  }
  if (on) button.setAttribute('aria-disabled', 'true');
  else button.removeAttribute('aria-disabled');
}

/** Whether `button` is disabled, by its attribute or by setUnavailable. */
export function unavailable(button: HTMLButtonElement): boolean {
  return button.disabled || button.getAttribute('aria-disabled') === 'true';
}

/**
 * Makes `button` unavailable for `seconds` while a rate limit lasts, showing
 * the time left (`waiting(n)`), then gives it back its label. It keeps the
 * focus throughout (setUnavailable). Returns a function that stops the
 * countdown early (leaving a screen).
 */
export function countdown(button: HTMLButtonElement, seconds: number, waiting: (left: number) => string): () => void {
  const label = button.dataset.label ?? button.textContent ?? '';
  // A second countdown on the same button restores the original label.
  button.dataset.label = label;
  window.clearInterval(Number(button.dataset.timer));
  let left = Math.max(1, Math.ceil(seconds));
  const stop = () => {
    window.clearInterval(timer);
    setUnavailable(button, false);
    button.textContent = label;
    delete button.dataset.timer;
  };
  const tick = () => {
    if (left <= 0) return stop();
    setUnavailable(button, true);
    button.textContent = waiting(left);
    left--;
  };
  const timer = window.setInterval(tick, 1000);
  button.dataset.timer = String(timer);
  tick();
  return () => window.clearInterval(timer);
}
