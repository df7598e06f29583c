// Progressive enhancement only: the page works without this file.
'use strict';
document.addEventListener('submit', (ev) => {
  const form = ev.target;
  const question = form instanceof HTMLFormElement ? form.dataset.confirm : undefined;
  if (question && !window.confirm(question)) ev.preventDefault();
});
