// The official Node.js SDK (@rocket.chat/sdk) as a bot would use it: log in (REST, then DDP resume),
// subscribe to __my_messages__, and answer every message from someone else over REST (chat.sendMessage).
// Prints one JSON line per event to stdout; tests/sim/test_public_clients.py drives it.
'use strict';
const { Bot } = require('@rocket.chat/sdk');

const host = process.env.RC_HOST; // http://127.0.0.1:<port>
const username = process.env.RC_USER;
const password = process.env.RC_PASSWORD;
const say = (event, data) => process.stdout.write(JSON.stringify({ event, ...data }) + '\n');
const quiet = { debug() {}, info() {}, warning() {}, warn() {}, error(...a) { say('sdk-error', { text: a.join(' ') }); } };

async function main() {
  const bot = new Bot({ host, useSsl: false, logger: quiet });
  await bot.connect({});
  const login = await bot.login({ username, password });
  say('logged-in', { userId: bot.userId || (login && login.id) });
  await bot.subscribeToMessages();
  await bot.reactToMessages(async (err, message, meta) => {
    if (err) { say('error', { text: String(err) }); return; }
    say('received', { id: message._id, rid: message.rid, msg: message.msg, t: message.t || null, meta });
    if (message.u._id === bot.userId || message.t || message.editedAt) return;
    try {
      const sent = await bot.sendToRoomId(`sdk heard: ${message.msg}`, message.rid);
      say('answered', { id: sent && sent._id, rid: message.rid });
    } catch (e) {
      say('error', { text: String(e && e.message || e) });
    }
  });
  say('subscribed', {});
}

const deadline = setTimeout(() => { say('timeout', {}); process.exit(2); }, Number(process.env.RC_RUN_SECONDS || 60) * 1000);
deadline.unref();
main().catch((e) => { say('fatal', { text: String(e && e.stack || e) }); process.exit(1); });
