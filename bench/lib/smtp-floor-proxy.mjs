// A measuring stick, not a product: the least JavaScript an SMTP mx relay with backend
// connections kept between sessions can run in Node.js. It greets, answers EHLO and MAIL itself,
// and at RCPT takes an idle backend connection (or dials one from 127.0.0.2, greets it with EHLO),
// sends MAIL and RCPT in one write, relays DATA to the end mark and the replies back, and on QUIT
// keeps the backend connection (up to MAX_IDLE). No checks, limits, timeouts, logs or metrics:
// whatever Concierge costs above this is the price of those and of its structure.
//
//   node bench/lib/smtp-floor-proxy.mjs LISTEN_PORT BACKEND_HOST:PORT
import net from 'node:net';

const [listenPort, backend] = process.argv.slice(2);
const [backendHost, backendPort] = backend.split(':');
const HOST = 'floor.bench.test';
const MAX_IDLE = 32;
const idle = [];

function dial() {
  const socket = net.connect({ host: backendHost, port: Number(backendPort), localAddress: '127.0.0.2', noDelay: true });
  socket.replies = []; // one callback per reply awaited, in order
  socket.on('error', () => {});
  socket.on('close', () => {
    const at = idle.indexOf(socket);
    if (at >= 0) idle.splice(at, 1);
  });
  let text = '';
  socket.on('data', (chunk) => {
    text += chunk.toString('latin1');
    for (let lf = text.indexOf('\n'); lf >= 0; lf = text.indexOf('\n')) {
      const line = text.slice(0, lf + 1);
      text = text.slice(lf + 1);
      if (line[3] !== '-') socket.replies.shift()?.(line);
    }
  });
  return socket;
}

net
  .createServer({ noDelay: true }, (client) => {
    client.on('error', () => {});
    let backendSocket;
    let from = '';
    let inData = false;
    let text = '';
    const body = (chunk) => {
      const s = chunk.toString('latin1');
      const end = s.indexOf('\r\n.\r\n');
      if (end < 0) return void backendSocket.write(chunk);
      backendSocket.write(chunk.subarray(0, end + 5));
      inData = false;
      backendSocket.replies.push((line) => client.write(line));
      text = s.slice(end + 5);
    };
    const rcpt = (line) => {
      backendSocket = idle.pop();
      if (backendSocket) {
        backendSocket.write(`${from}\r\n${line}\r\n`);
        backendSocket.replies.push(() => {}, (reply) => client.write(reply));
        return;
      }
      backendSocket = dial();
      backendSocket.replies.push(
        () => backendSocket.write(`EHLO ${HOST}\r\n`),
        () => backendSocket.write(`${from}\r\n${line}\r\n`),
        () => {},
        (reply) => client.write(reply),
      );
    };
    client.write(`220 ${HOST} ESMTP\r\n`);
    client.on('data', (chunk) => {
      if (inData) return body(chunk);
      text += chunk.toString('latin1');
      for (let lf = text.indexOf('\n'); lf >= 0 && !inData; lf = text.indexOf('\n')) {
        const line = text.slice(0, lf).replace(/\r$/, '');
        text = text.slice(lf + 1);
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === 'EHLO') client.write(`250-${HOST}\r\n250-PIPELINING\r\n250-SIZE 10485760\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n`);
        else if (verb === 'MAIL') {
          from = line;
          client.write('250 2.1.0 Ok\r\n');
        } else if (verb === 'RCPT') rcpt(line);
        else if (verb === 'DATA') {
          backendSocket.write('DATA\r\n');
          backendSocket.replies.push((reply) => {
            client.write(reply);
            inData = true;
            if (text) {
              const rest = Buffer.from(text, 'latin1');
              text = '';
              body(rest);
            }
          });
        } else if (verb === 'QUIT') {
          client.end('221 2.0.0 Bye\r\n');
          if (backendSocket && idle.length < MAX_IDLE) idle.push(backendSocket);
          else backendSocket?.end('QUIT\r\n');
          backendSocket = undefined;
        }
      }
    });
    client.on('end', () => client.end());
  })
  .listen(Number(listenPort), '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
