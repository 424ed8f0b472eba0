#!/usr/bin/env node
// An independent WeChat Pay v3 client (wechatpay-axios-plugin) held against the local sandbox.
//   node sandbox_check.js request <service.env>
//       signed requests in both platform-key modes; every answer is verified by the library's own verifier.
//   node sandbox_check.js notify <service.env> <notification.json>
//       verify ({headers, body}) with the library's Rsa/Formatter and decrypt it with its AesGcm.
// Prints one JSON line and exits 0 on success; exits 1 with the reason otherwise.
'use strict';

const fs = require('fs');
const path = require('path');
const { X509Certificate, randomBytes } = require('crypto');
const { Wechatpay, Rsa, Aes, Formatter } = require('wechatpay-axios-plugin');

const MAX_SKEW = 300;

function readEnv(file) {
  const env = {};
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    const at = line.indexOf('=');
    if (line && !line.startsWith('#') && at > 0) env[line.slice(0, at)] = line.slice(at + 1);
  }
  env.STATE_DIR = path.dirname(path.resolve(file));
  return env;
}

function platformKeys(env) {
  const certPem = fs.readFileSync(path.join(env.STATE_DIR, 'platform_cert.pem'), 'utf8');
  const certSerial = new X509Certificate(certPem).serialNumber.toUpperCase();
  return {
    pubKeyId: env.WECHATPAY_PUBLIC_KEY_ID,
    certSerial,
    certs: {
      [env.WECHATPAY_PUBLIC_KEY_ID]: Rsa.from(`file://${env.WECHATPAY_PUBLIC_KEY_FILE}`, Rsa.KEY_TYPE_PUBLIC),
      [certSerial]: Rsa.from(certPem, Rsa.KEY_TYPE_PUBLIC),
    },
  };
}

function client(env, certs) {
  return new Wechatpay({
    mchid: env.WECHATPAY_MCHID,
    serial: env.WECHATPAY_CERT_SERIAL_NO,
    privateKey: Rsa.from(`file://${env.WECHATPAY_PRIVATE_KEY_FILE}`, Rsa.KEY_TYPE_PRIVATE),
    certs,
    baseURL: `${env.WECHATPAY_GATEWAY}/`,
  });
}

async function request(env) {
  const keys = platformKeys(env);
  const wxpay = client(env, keys.certs);
  const outTradeNo = `NODE${randomBytes(10).toString('hex')}`;
  const inPubkeyMode = { headers: { 'Wechatpay-Serial': keys.pubKeyId } };

  // Public-key mode: the request names the PUB_KEY_ID, the answer must be signed with that key.
  const placed = await wxpay.v3.pay.transactions.native.post({
    appid: env.WECHAT_APPID,
    mchid: env.WECHATPAY_MCHID,
    description: '体验课（node 客户端）',
    out_trade_no: outTradeNo,
    notify_url: 'http://127.0.0.1:9/notify',
    amount: { total: 20000, currency: 'CNY' },
  }, inPubkeyMode);
  if (placed.headers['wechatpay-serial'] !== keys.pubKeyId) throw new Error('order answer not signed in public-key mode');

  // Certificate mode: no Wechatpay-Serial, the answer is signed by the platform certificate.
  const queried = await wxpay.v3.pay.transactions.outTradeNo.$out_trade_no$.get({
    params: { mchid: env.WECHATPAY_MCHID }, out_trade_no: outTradeNo,
  });
  if (queried.headers['wechatpay-serial'] !== keys.certSerial) throw new Error('query answer not signed with the certificate');

  // 204 with an empty body, signed too.
  const closed = await wxpay.v3.pay.transactions.outTradeNo.$out_trade_no$.close.post(
    { mchid: env.WECHATPAY_MCHID }, { out_trade_no: outTradeNo },
  );

  // The verifier really verifies: with the two keys swapped, the same call must be refused.
  const swapped = client(env, { [keys.pubKeyId]: keys.certs[keys.certSerial], [keys.certSerial]: keys.certs[keys.pubKeyId] });
  let refused = null;
  try {
    await swapped.v3.pay.transactions.outTradeNo.$out_trade_no$.get({ params: { mchid: env.WECHATPAY_MCHID }, out_trade_no: outTradeNo });
  } catch (err) {
    refused = err.code || err.message;
  }
  if (!refused) throw new Error('a wrongly keyed client accepted the answer');

  return {
    ok: true,
    out_trade_no: outTradeNo,
    code_url: placed.data.code_url,
    trade_state: queried.data.trade_state,
    close_status: closed.status,
    serials: [placed.headers['wechatpay-serial'], queried.headers['wechatpay-serial']],
    swapped_keys_refused: refused,
  };
}

function notify(env, file) {
  const { headers, body } = JSON.parse(fs.readFileSync(file, 'utf8'));
  const header = (name) => {
    const key = Object.keys(headers).find((k) => k.toLowerCase() === name.toLowerCase());
    return key === undefined ? undefined : headers[key];
  };
  const keys = platformKeys(env);
  const serial = header('Wechatpay-Serial');
  const timestamp = header('Wechatpay-Timestamp');
  if (!Object.prototype.hasOwnProperty.call(keys.certs, serial)) throw new Error(`unknown Wechatpay-Serial ${serial}`);
  if (Math.abs(Formatter.timestamp() - Number(timestamp)) > MAX_SKEW) throw new Error('timestamp out of range');
  const message = Formatter.response(timestamp, header('Wechatpay-Nonce'), body);
  if (!Rsa.verify(message, header('Wechatpay-Signature'), keys.certs[serial])) throw new Error('signature does not verify');
  const event = JSON.parse(body);
  const { ciphertext, nonce, associated_data: aad } = event.resource;
  const apiv3Key = fs.readFileSync(env.WECHATPAY_APIV3_KEY_FILE, 'utf8').trim();
  const resource = JSON.parse(Aes.AesGcm.decrypt(ciphertext, apiv3Key, nonce, aad));
  return { ok: true, id: event.id, event_type: event.event_type, serial, resource };
}

async function main() {
  const [mode, envFile, input] = process.argv.slice(2);
  const env = readEnv(envFile);
  const result = mode === 'request' ? await request(env) : notify(env, input);
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main().catch((err) => {
  const detail = err.response ? ` (HTTP ${err.response.status} ${JSON.stringify(err.response.data)})` : '';
  process.stderr.write(`sandbox_check failed: ${err.code || ''} ${err.message}${detail}\n`);
  process.exit(1);
});
