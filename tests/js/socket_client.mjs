// The official socket.io-client (from static/node_modules) against a Shopcast server:
// connect with a token, join a stream, chat, react, and print what came back as JSON.
import { io } from "../../static/node_modules/socket.io-client/build/esm-debug/index.js";

const [url, token, streamId] = process.argv.slice(2);
const socket = io(url, { auth: { token }, transports: ["websocket"], reconnection: false });
const seen = [];
socket.onAny((event, data) => seen.push([event, data]));

const call = (event, data) => socket.timeout(5000).emitWithAck(event, data);
const timer = setTimeout(() => { console.error("timed out"); process.exit(2); }, 10000);

socket.on("connect", async () => {
  const joined = await call("stream:join", { stream_id: streamId });
  const chat = await call("stream:chat", { stream_id: streamId, text: "hello from node" });
  const reaction = await call("stream:reaction", { stream_id: streamId, emoji: "\u{1F525}" });
  await new Promise((resolve) => setTimeout(resolve, 600));
  console.log(JSON.stringify({ joined, chat, reaction, seen }));
  clearTimeout(timer);
  socket.close();
});
socket.on("connect_error", (error) => { console.error(error.message); process.exit(1); });
