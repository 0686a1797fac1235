// Watches one job with the npm `eventsource` package (a standard EventSource) and
// prints what it saw as JSON once the client has stopped by itself, or after a deadline.
const EventSource = require("eventsource"); // version 2: the class itself

const [url, token, deadlineMs] = process.argv.slice(2);
const source = new EventSource(url, { headers: { Authorization: `Bearer ${token}` } });
const seen = { opens: 0, errors: 0, events: [] };
source.onopen = () => { seen.opens += 1; };
for (const type of ["snapshot", "job"]) {
  source.addEventListener(type, (event) => seen.events.push({ type, id: event.lastEventId }));
}
const started = Date.now();
source.onerror = () => { seen.errors += 1; };
const timer = setInterval(() => {
  const late = Date.now() - started > Number(deadlineMs);
  if (source.readyState === EventSource.CLOSED || late) {
    clearInterval(timer);
    seen.readyState = source.readyState;
    seen.closedAfterMs = Date.now() - started;
    source.close();
    console.log(JSON.stringify(seen));
  }
}, 50);
