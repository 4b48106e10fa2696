// TLS-terminating logging proxy on loopback: KPL (TLS, VerifyCertificate=false) -> this -> kinesis-mock plain port.
// Logs every request/response (bodies in base64) as JSON lines, so the exact PutRecords
// requests KPL sends (including ExplicitHashKey, which GetRecords does not return) are kept.
// Usage: node proxy.js <certJson> <listenPort> <upstreamPlainPort> <logFile>
// Lines are written when the response is known (before it is sent back); `n` numbers the
// requests in the order their bodies arrived, which is the order KPL sent them.
const https = require('https'), http = require('http'), fs = require('fs');
const [certPath, listenPort, upPort, logFile] = process.argv.slice(2);
const c = JSON.parse(fs.readFileSync(certPath, 'utf8')).server;
const log = fs.openSync(logFile, 'a');
let arrived = 0;
https.createServer({ key: c.key, cert: c.cert }, (req, res) => {
  const chunks = [];
  req.on('data', d => chunks.push(d));
  req.on('end', () => {
    const n = ++arrived;
    const body = Buffer.concat(chunks);
    // kinesis-mock has no STS; KPL 0.15 calls STS GetCallerIdentity only to learn the account
    // id for the stream ARN. Answer it here with kinesis-mock's default account 000000000000.
    if (body.toString('latin1').includes('Action=GetCallerIdentity')) {
      const xml = '<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult>' +
        '<Arn>arn:aws:iam::000000000000:user/fake</Arn><UserId>AIDAFAKEFAKEFAKE</UserId><Account>000000000000</Account>' +
        '</GetCallerIdentityResult><ResponseMetadata><RequestId>00000000-0000-0000-0000-000000000000</RequestId></ResponseMetadata></GetCallerIdentityResponse>';
      fs.writeSync(log, JSON.stringify({ n, t: Date.now(), method: req.method, path: req.url, target: 'sts:GetCallerIdentity (answered by proxy)',
        body_b64: body.toString('base64'), status: 200, resp_b64: Buffer.from(xml).toString('base64') }) + '\n');
      res.writeHead(200, { 'content-type': 'text/xml', 'x-amzn-requestid': '00000000-0000-0000-0000-000000000000' });
      res.end(xml);
      return;
    }
    const up = http.request({ host: '127.0.0.1', port: +upPort, method: req.method, path: req.url, headers: req.headers }, ur => {
      const rc = [];
      ur.on('data', d => rc.push(d));
      ur.on('end', () => {
        const rb = Buffer.concat(rc);
        fs.writeSync(log, JSON.stringify({ n, t: Date.now(), method: req.method, path: req.url,
          target: req.headers['x-amz-target'] || null, content_type: req.headers['content-type'] || null,
          host: req.headers['host'] || null, user_agent: req.headers['user-agent'] || null,
          body_b64: body.toString('base64'), status: ur.statusCode, resp_b64: rb.toString('base64') }) + '\n');
        res.writeHead(ur.statusCode, ur.headers);
        res.end(rb);
      });
    });
    up.on('error', e => { fs.writeSync(log, JSON.stringify({ n, t: Date.now(), error: String(e) }) + '\n'); res.writeHead(502); res.end(); });
    up.end(body);
  });
}).listen(+listenPort, '127.0.0.1', () => console.log('proxy listening on ' + listenPort));
