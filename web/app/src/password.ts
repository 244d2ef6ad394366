import { h } from './dom';
import { t } from './i18n';

/**
 * A password input with its Show/Hide toggle, for sign-up and sign-in. The
 * toggle follows the input, so Tab goes email → password → toggle.
 */
export function passwordInput(autocomplete: 'new-password' | 'current-password', describedBy: string): { input: HTMLInputElement; field: HTMLElement } {
  const input = h('input', {
    id: 'password', name: 'password', type: 'password', autocomplete,
    required: true, 'aria-describedby': describedBy,
  });
  const toggle = h('button', {
    type: 'button', class: 'link toggle', 'aria-controls': 'password', 'aria-pressed': 'false', 'aria-label': t.showPassword,
  }, t.show);
  toggle.addEventListener('click', () => {
    const showing = input.type === 'text';
    input.type = showing ? 'password' : 'text';
    toggle.textContent = showing ? t.show : t.hide;
    toggle.setAttribute('aria-pressed', String(!showing));
    toggle.setAttribute('aria-label', showing ? t.showPassword : t.hidePassword);
  });
  return { input, field: h('div', { class: 'with-toggle' }, input, toggle) };
}
