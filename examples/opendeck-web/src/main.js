// The OpenDeck page: list decks (fetch), create one (XHR), and a button that fails on purpose.
// window.opendeckConfig comes from config.js, served next to the page.
import { setupTelemetry } from './telemetry.js';

const config = window.opendeckConfig;
const telemetry = setupTelemetry(config);
const status = document.getElementById('status');

async function loadDecks() {
  const response = await fetch(`${config.apiUrl}/api/decks`);
  const body = await response.json();
  document.getElementById('decks').textContent = body.decks.map((deck) => deck.title).join(', ');
  status.textContent = `decks loaded (${response.status})`;
}

function createDeck() {
  const request = new XMLHttpRequest();
  request.open('POST', `${config.apiUrl}/api/decks`);
  request.setRequestHeader('Content-Type', 'application/json');
  request.onload = () => { status.textContent = `deck created (${request.status})`; };
  request.onerror = () => { status.textContent = 'deck not created'; };
  request.send(JSON.stringify({ title: 'Irregular verbs', topic: 'languages' }));
}

function breakOnPurpose() {
  status.textContent = 'breaking';
  throw new Error('the sample page fails here on purpose');
}

document.getElementById('load-decks').addEventListener('click', () => {
  loadDecks().catch((error) => { status.textContent = `decks not loaded: ${error}`; });
});
document.getElementById('create-deck').addEventListener('click', createDeck);
document.getElementById('break').addEventListener('click', breakOnPurpose);

// For people and tests: send what the SDK holds now (once calls in progress end) instead of at its next export.
window.opendeck = { flush: telemetry.flush };
status.textContent = 'ready';
