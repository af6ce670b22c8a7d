// The JavaScript client (@kubernetes/client-node) through a running hub, online and with
// the cloud cut: what a Node.js operator on an edge node does.  Run by hand; CI does not
// (it must not depend on npm).
//
//   python -m kubesandbox --port 31001 --control-port 31002 --nodes 3 --pods-per-node 3 &
//   yurthub serve --server-addr http://127.0.0.1:31001 --node-name node-0000 \
//       --proxy-port 31010 --serve-port 31011 --cache-agents '*' \
//       --bootstrap-mode credentials --secure-proxy-port 0 \
//       --disk-cache-path /tmp/c --root-dir /tmp/r &
//   mkdir /tmp/js && cd /tmp/js && npm install @kubernetes/client-node@1   # 1.x: node 20
//   node /path/to/tests/clients/js-client-check.mjs http://127.0.0.1:31010 \
//       http://127.0.0.1:31002
//
// The package is loaded from the current directory's node_modules.  The second argument
// is the sandbox's control port: the script cuts the cloud (POST /_sandbox/offline) and
// brings it back.  Exit 0 when every check passed, 1 otherwise; each check prints a line.
//
// It checks: get, list with label and field selectors, limit/continue, create/patch/delete
// of a ConfigMap while an informer (makeInformer: list, then watch) follows them, an informer
// of a custom resource (NodePool) online and, started anew, offline; offline:
// the same lists from the cache, without an object the client deleted (a patch answered
// before its delete once brought it back), Status errors with kind, code and reason (404,
// 503 for writes, 403 for deletes), the informer re-watching without relisting in a loop;
// back online: the informer sees a change made while the cloud was away.
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

const [hub, control] = process.argv.slice(2);
if (!hub || !control) {
  console.error('usage: node js-client-check.mjs HUB_URL SANDBOX_CONTROL_URL');
  process.exit(2);
}
const k8s = await import(pathToFileURL(
  createRequire(process.cwd() + '/').resolve('@kubernetes/client-node')).href);

const kc = new k8s.KubeConfig();
kc.loadFromOptions({
  clusters: [{ name: 'hub', server: hub, skipTLSVerify: true }],
  users: [{ name: 'none' }],
  contexts: [{ name: 'hub', cluster: 'hub', user: 'none' }],
  currentContext: 'hub',
});
const core = kc.makeApiClient(k8s.CoreV1Api);
const NS = 'default';
let failed = 0;
const check = (ok, what, detail = '') => {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}${ok || !detail ? '' : ': ' + detail}`);
  if (!ok) failed++;
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(cond, ms = 15000) {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(200)) {
    if (await cond()) return true;
  }
  return false;
}
async function status(f) {
  try { await f(); return null; } catch (e) {
    try { return JSON.parse(e.body); } catch { return { code: e.code, raw: String(e.body) }; }
  }
}
async function sandbox(action) {
  const r = await fetch(`${control}/_sandbox/${action}`, { method: 'POST' });
  if (!r.ok) throw new Error(`sandbox ${action}: ${r.status}`);
}
const names = (list) => list.items.map((o) => o.metadata.name).sort();

// -- online ------------------------------------------------------------------------------
let lists = 0;
const informer = k8s.makeInformer(kc, `/api/v1/namespaces/${NS}/configmaps`,
  () => { lists++; return core.listNamespacedConfigMap({ namespace: NS }); });
const seen = [];
informer.on('add', (o) => seen.push(['add', o.metadata.name]));
informer.on('delete', (o) => seen.push(['delete', o.metadata.name]));
informer.on('error', () => setTimeout(() => informer.start(), 1000));
await informer.start();

const pods = await core.listNamespacedPod({ namespace: NS });
check(pods.kind === 'PodList' && pods.items.length > 0, 'list pods', JSON.stringify(pods.kind));
const node = pods.items[0].spec.nodeName;
const label = Object.entries(pods.items[0].metadata.labels || {})[0] || ['app', 'web'];
const byField = await core.listNamespacedPod({ namespace: NS, fieldSelector: `spec.nodeName=${node}` });
const byLabel = await core.listNamespacedPod({ namespace: NS, labelSelector: `${label[0]}=${label[1]}` });
const page = await core.listNamespacedPod({ namespace: NS, limit: 2 });
const rest = await core.listNamespacedPod({ namespace: NS, limit: 100, _continue: page.metadata._continue });
check(JSON.stringify([...names(page), ...names(rest)].sort()) === JSON.stringify(names(pods)),
  'limit/continue pages add up to the list');

for (let i = 0; i < 3; i++) {
  const name = `js-check-${i}`;
  await core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name }, data: { a: '1' } } });
  await core.patchNamespacedConfigMap({ namespace: NS, name, body: { data: { b: '2' } } },
    k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch));
  await core.deleteNamespacedConfigMap({ namespace: NS, name });
}
check(await until(() => seen.filter(([t]) => t === 'delete').length === 3),
  'the informer saw the three deletes', JSON.stringify(seen));
const onlineCms = names(await core.listNamespacedConfigMap({ namespace: NS }));
// A custom resource (the cluster-scoped NodePool), listed and watched by an informer: the
// hub learns its scope from the cloud's discovery itself (no client asked for discovery).
const custom = kc.makeApiClient(k8s.CustomObjectsApi);
const POOLS = { group: 'apps.openyurt.io', version: 'v1beta2', plural: 'nodepools' };
const poolInformer = () => k8s.makeInformer(kc, '/apis/apps.openyurt.io/v1beta2/nodepools',
  () => custom.listClusterCustomObject(POOLS));
const pools = poolInformer();
await pools.start();
const onlinePools = pools.list().map((o) => o.metadata.name).sort();
check(onlinePools.length > 0, 'a NodePool informer lists the pools', JSON.stringify(onlinePools));
await pools.stop();
await sleep(1000); // the hub's cache writer commits what it was sent

// -- offline -----------------------------------------------------------------------------
await sandbox('offline');
await sleep(3000); // the hub's health checker notices
const offPods = await status(() => core.listNamespacedPod({ namespace: NS }));
check(offPods === null, 'list pods offline', JSON.stringify(offPods));
check(JSON.stringify(names(await core.listNamespacedPod({ namespace: NS, fieldSelector: `spec.nodeName=${node}` })))
  === JSON.stringify(names(byField)), 'field selector offline = online');
check(JSON.stringify(names(await core.listNamespacedPod({ namespace: NS, labelSelector: `${label[0]}=${label[1]}` })))
  === JSON.stringify(names(byLabel)), 'label selector offline = online');
const offCms = names(await core.listNamespacedConfigMap({ namespace: NS }));
check(JSON.stringify(offCms) === JSON.stringify(onlineCms),
  'configmaps offline = online (nothing deleted comes back)', `${offCms} vs ${onlineCms}`);
const missing = await status(() => core.readNamespacedConfigMap({ namespace: NS, name: 'js-check-0' }));
check(missing?.kind === 'Status' && missing.code === 404 && missing.reason === 'NotFound',
  'a deleted object is 404 offline', JSON.stringify(missing));
const write = await status(() => core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'js-x' } } }));
check(write?.kind === 'Status' && write.code === 503, 'a write offline is a 503 Status', JSON.stringify(write));
const del = await status(() => core.deleteNamespacedConfigMap({ namespace: NS, name: onlineCms[0] }));
check(del?.kind === 'Status' && del.code === 403, 'a delete offline is a 403 Status', JSON.stringify(del));
const poolsOff = poolInformer(); // an operator started while the cloud is away
let poolErrors = 0;
poolsOff.on('error', () => poolErrors++);
await poolsOff.start();
await sleep(1500);
check(JSON.stringify(poolsOff.list().map((o) => o.metadata.name).sort()) === JSON.stringify(onlinePools)
  && poolErrors === 0, 'a NodePool informer started offline has the pools (its watch open)',
`${JSON.stringify(poolsOff.list().map((o) => o.metadata.name))}, ${poolErrors} error(s)`);
await poolsOff.stop();
const listsOffline = lists;
await sleep(3000);
check(lists === listsOffline, 'the informer does not relist in a loop offline', `${lists - listsOffline} lists`);
check(JSON.stringify(informer.list().map((o) => o.metadata.name).sort()) === JSON.stringify(onlineCms),
  "the informer's store is what the cloud had");

// -- back online -------------------------------------------------------------------------
await sandbox('online');
await sleep(3000);
await core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'js-check-back' } } });
check(await until(() => informer.get('js-check-back', NS) !== undefined),
  'the informer follows the cloud again');
await core.deleteNamespacedConfigMap({ namespace: NS, name: 'js-check-back' });
await informer.stop();
console.log(failed ? `${failed} check(s) failed` : 'all checks passed');
process.exit(failed ? 1 : 0);
