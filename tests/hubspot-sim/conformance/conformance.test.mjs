// The simulator, driven by HubSpot's official Node client (@hubspot/api-client 13) with its
// basePath pointed at it: if the client HubSpot ships understands every answer, the simulator
// speaks HubSpot's dialect and not only hubsync's.
//
// Run: HUBSPOT_SIM_URL=http://127.0.0.1:8090 node --test conformance.test.mjs

import { test } from 'node:test';
import assert from 'node:assert/strict';
import hubspot from '@hubspot/api-client';

const { Client } = hubspot;
const BASE = process.env.HUBSPOT_SIM_URL;
assert.ok(BASE, 'set HUBSPOT_SIM_URL to the simulator base URL');

const CLIENT_ID = 'sim-client-id';
const CLIENT_SECRET = 'sim-client-secret';
const REDIRECT_URI = 'http://localhost:3000/oauth/callback';
const CRM_SCOPES = [
  'oauth',
  'crm.objects.contacts.read',
  'crm.objects.contacts.write',
  'crm.objects.deals.read',
  'crm.schemas.contacts.read',
  'crm.schemas.contacts.write',
];

const client = (accessToken) => new Client({ accessToken, basePath: BASE, numberOfApiCallRetries: 0 });

/** Calls the simulator's test controls (`/_sim/...`). */
async function admin(method, path, body) {
  const response = await fetch(BASE + path, {
    method,
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  assert.ok(response.ok, `${method} ${path} answered ${response.status}: ${await response.clone().text()}`);
  return response.status === 204 ? null : response.json();
}

/** A fresh portal (so tests do not see each other's data) and an access token for it. */
let nextPortal = 7000 + Math.floor(Math.random() * 1000) * 10;
async function portal(scopes = CRM_SCOPES) {
  const hubId = nextPortal++;
  await admin('POST', '/_sim/portals', { hub_id: hubId, scopes });
  const tokens = await admin('POST', '/_sim/tokens', { hub_id: hubId, client_id: CLIENT_ID, scopes });
  return { hubId, tokens, hs: client(tokens.access_token) };
}

/** Awaits a call that must fail and returns the client's ApiException. */
async function failure(promise) {
  try {
    await promise;
  } catch (error) {
    assert.equal(typeof error.code, 'number', `not an ApiException: ${error}`);
    return error;
  }
  assert.fail('the call succeeded but should have failed');
}

/** Follows the authorize step by hand, as a browser would, and returns the redirect's query. */
async function authorize(url) {
  const response = await fetch(url, { redirect: 'manual' });
  assert.equal(response.status, 302);
  const location = new URL(response.headers.get('location'));
  assert.equal(location.origin + location.pathname, REDIRECT_URI);
  return location.searchParams;
}

function authorizeUrl(hubId, scopes, optional, state) {
  const official = new Client().oauth.getAuthorizationUrl(CLIENT_ID, REDIRECT_URI, scopes.join(' '), optional, state);
  // The client always names app.hubspot.com; the simulator serves that host's pages too.
  const url = new URL(official);
  return `${BASE}${url.pathname}${url.search}&portal=${hubId}`;
}

test('OAuth: code exchange, introspection, refresh and revocation', async () => {
  const hubId = nextPortal++;
  await admin('POST', '/_sim/portals', { hub_id: hubId, scopes: [...CRM_SCOPES, 'crm.lists.read'] });
  const hs = new Client({ basePath: BASE, numberOfApiCallRetries: 0 });

  const query = await authorize(authorizeUrl(hubId, CRM_SCOPES, 'crm.lists.read crm.lists.write', 'st-42'));
  assert.equal(query.get('state'), 'st-42');
  const code = query.get('code');
  assert.ok(code);

  const grant = await hs.oauth.tokensApi.create('authorization_code', code, REDIRECT_URI, CLIENT_ID, CLIENT_SECRET);
  assert.ok(grant.accessToken);
  assert.ok(grant.refreshToken);
  assert.equal(grant.expiresIn, 1800);
  assert.equal(grant.tokenType, 'bearer');

  // A code works once.
  const reused = await failure(
    hs.oauth.tokensApi.create('authorization_code', code, REDIRECT_URI, CLIENT_ID, CLIENT_SECRET),
  );
  assert.equal(reused.code, 400);
  assert.match(reused.body.message, /auth code/);

  const info = await hs.oauth.accessTokensApi.get(grant.accessToken);
  assert.equal(info.hubId, hubId);
  assert.equal(info.token, grant.accessToken);
  assert.ok(info.scopes.includes('crm.objects.contacts.write'));
  assert.ok(info.scopes.includes('crm.lists.read'), 'an optional scope the portal has is granted');
  assert.ok(!info.scopes.includes('crm.lists.write'), 'an optional scope the portal lacks is dropped');
  assert.ok(info.expiresIn > 0 && info.expiresIn <= 1800);
  assert.ok(info.appId > 0);
  assert.ok(info.userId > 0);

  const refreshed = await hs.oauth.tokensApi.create(
    'refresh_token',
    undefined,
    undefined,
    CLIENT_ID,
    CLIENT_SECRET,
    grant.refreshToken,
  );
  assert.notEqual(refreshed.accessToken, grant.accessToken);
  assert.equal(refreshed.refreshToken, grant.refreshToken, 'the simulator keeps the refresh token');
  await client(refreshed.accessToken).crm.contacts.basicApi.getPage(1);

  const refreshInfo = await hs.oauth.refreshTokensApi.get(grant.refreshToken);
  assert.equal(refreshInfo.hubId, hubId);
  assert.equal(refreshInfo.clientId, CLIENT_ID);

  const wrongSecret = await failure(
    hs.oauth.tokensApi.create('refresh_token', undefined, undefined, CLIENT_ID, 'nope', grant.refreshToken),
  );
  assert.equal(wrongSecret.code, 400);

  await hs.oauth.refreshTokensApi.archive(grant.refreshToken);
  const revoked = await failure(
    hs.oauth.tokensApi.create('refresh_token', undefined, undefined, CLIENT_ID, CLIENT_SECRET, grant.refreshToken),
  );
  assert.equal(revoked.code, 400);
  assert.match(revoked.body.message, /refresh token/);
});

test('OAuth: a declined install redirects with access_denied and the state', async () => {
  const hubId = nextPortal++;
  await admin('POST', '/_sim/portals', { hub_id: hubId, scopes: CRM_SCOPES });
  await admin('PUT', '/_sim/authorize-denies', { deny: true });
  try {
    const query = await authorize(authorizeUrl(hubId, CRM_SCOPES, undefined, 'st-denied'));
    assert.equal(query.get('error'), 'access_denied');
    assert.ok(query.get('error_description'));
    assert.equal(query.get('state'), 'st-denied');
    assert.equal(query.get('code'), null);
  } finally {
    await admin('PUT', '/_sim/authorize-denies', { deny: false });
  }
});

test('contacts: create, get, update, clear, list pages and archive', async () => {
  const { hubId, hs } = await portal();
  const contacts = hs.crm.contacts.basicApi;

  const created = await contacts.create({
    properties: { email: 'Ada@Example.com', firstname: 'Ada', lifecyclestage: 'lead' },
    associations: [],
  });
  assert.match(created.id, /^\d+$/);
  assert.equal(created.properties.email, 'ada@example.com');
  assert.equal(created.properties.hs_object_id, created.id);
  assert.ok(created.createdAt instanceof Date);
  assert.equal(created.archived, false);

  const got = await contacts.getById(created.id, ['firstname', 'lifecyclestage']);
  assert.equal(got.properties.firstname, 'Ada');
  assert.equal(got.properties.lifecyclestage, 'lead');
  const byEmail = await contacts.getById('ada@example.com', ['firstname'], undefined, undefined, false, 'email');
  assert.equal(byEmail.id, created.id);

  const updated = await contacts.update(created.id, { properties: { firstname: 'Augusta', jobtitle: 'Countess' } });
  assert.equal(updated.properties.firstname, 'Augusta');
  assert.ok(updated.updatedAt >= created.updatedAt);
  await contacts.update(created.id, { properties: { jobtitle: '' } });
  const cleared = await contacts.getById(created.id, ['jobtitle']);
  assert.equal(cleared.properties.jobtitle, null);

  for (let i = 0; i < 24; i++) {
    await admin('POST', `/_sim/portals/${hubId}/objects/contacts`, {
      properties: { email: `page${i}@example.com` },
    });
  }
  const seen = [];
  let after;
  let pages = 0;
  do {
    const page = await contacts.getPage(10, after, ['email']);
    pages++;
    seen.push(...page.results.map((r) => r.id));
    after = page.paging?.next?.after;
    if (after) assert.ok(page.paging.next.link.includes(`after=${after}`));
  } while (after);
  assert.equal(pages, 3);
  assert.equal(seen.length, 25);
  assert.equal(new Set(seen).size, 25);

  await contacts.archive(created.id);
  const gone = await failure(contacts.getById(created.id));
  assert.equal(gone.code, 404);
  await contacts.archive('987654321'); // unknown ids archive fine
  const archived = await contacts.getPage(10, undefined, undefined, undefined, undefined, true);
  assert.deepEqual(
    archived.results.map((r) => r.id),
    [created.id],
  );
});

test('batch: create, read, update and upsert, with 207 per-input errors', async () => {
  const { hs } = await portal();
  const batch = hs.crm.contacts.batchApi;

  const created = await batch.create({
    inputs: [
      { properties: { email: 'b1@example.com', firstname: 'One' }, associations: [], objectWriteTraceId: 't1' },
      { properties: { email: 'b2@example.com', lifecyclestage: 'not-a-stage' }, associations: [], objectWriteTraceId: 't2' },
      { properties: { email: 'b3@example.com' }, associations: [], objectWriteTraceId: 't3' },
    ],
  });
  assert.equal(created.status, 'COMPLETE');
  assert.equal(created.results.length, 2);
  assert.equal(created.numErrors, 1);
  const [createError] = created.errors;
  assert.equal(createError.category, 'VALIDATION_ERROR');
  assert.deepEqual(createError.context.objectWriteTraceId, ['t2']);
  assert.match(createError.message, /INVALID_OPTION/);
  const ids = Object.fromEntries(created.results.map((r) => [r.properties.email, r.id]));

  // Without trace ids a bad input fails the whole batch and nothing is created.
  const atomic = await failure(
    batch.create({
      inputs: [
        { properties: { email: 'b4@example.com' }, associations: [] },
        { properties: { email: 'b5@example.com', nosuchproperty: 'x' }, associations: [] },
      ],
    }),
  );
  assert.equal(atomic.code, 400);
  assert.equal(atomic.body.category, 'VALIDATION_ERROR');
  const none = await failure(batch.read({ inputs: [{ id: 'b4@example.com' }], idProperty: 'email', properties: [] }));
  assert.equal(none.code, 404);

  const read = await batch.read({
    inputs: [{ id: ids['b1@example.com'] }, { id: '999999999' }, { id: ids['b3@example.com'] }],
    properties: ['email', 'firstname'],
    propertiesWithHistory: [],
  });
  assert.equal(read.results.length, 2);
  assert.equal(read.numErrors, 1);
  assert.equal(read.errors[0].category, 'OBJECT_NOT_FOUND');
  assert.deepEqual(read.errors[0].context.ids, ['999999999']);

  const updated = await batch.update({
    inputs: [
      { id: ids['b1@example.com'], properties: { firstname: 'Uno' } },
      { id: ids['b3@example.com'], properties: { firstname: 'Tres' } },
    ],
  });
  assert.equal(updated.results.length, 2);
  assert.equal(updated.errors, undefined);
  assert.deepEqual(updated.results.map((r) => r.properties.firstname).sort(), ['Tres', 'Uno']);

  const upserted = await batch.upsert({
    inputs: [
      { id: 'b1@example.com', idProperty: 'email', properties: { lastname: 'Lovelace' } },
      { id: 'b6@example.com', idProperty: 'email', properties: { firstname: 'Six' } },
      { id: 'b7@example.com', idProperty: 'email', properties: { hs_lead_status: 'NOPE' } },
    ],
  });
  assert.equal(upserted.results.length, 2);
  const existing = upserted.results.find((r) => r.id === ids['b1@example.com']);
  assert.equal(existing._new, false);
  assert.equal(existing.properties.firstname, 'Uno', 'omitted properties are left unchanged');
  assert.equal(existing.properties.lastname, 'Lovelace');
  const fresh = upserted.results.find((r) => r.properties.email === 'b6@example.com');
  assert.equal(fresh._new, true);
  assert.equal(upserted.numErrors, 1);
  assert.deepEqual(upserted.errors[0].context.ids, ['b7@example.com']);

  const tooMany = await failure(
    batch.read({ inputs: Array.from({ length: 101 }, (_, i) => ({ id: String(i + 1) })), properties: [] }),
  );
  assert.equal(tooMany.code, 400);
  assert.equal(tooMany.body.category, 'VALIDATION_ERROR');

  await batch.archive({ inputs: [{ id: ids['b1@example.com'] }, { id: ids['b3@example.com'] }] });
  const afterArchive = await failure(batch.read({ inputs: [{ id: ids['b1@example.com'] }], properties: [] }));
  assert.equal(afterArchive.code, 404);
});

test('properties: list, get, create and a 409 for a duplicate', async () => {
  const { hs } = await portal([...CRM_SCOPES, 'crm.objects.deals.read']);
  const properties = hs.crm.properties.coreApi;

  const all = await properties.getAll('contacts');
  const email = all.results.find((p) => p.name === 'email');
  assert.equal(email.type, 'string');
  assert.equal(email.fieldType, 'text');
  assert.equal(email.hasUniqueValue, true);
  const stage = all.results.find((p) => p.name === 'lifecyclestage');
  assert.equal(stage.type, 'enumeration');
  assert.ok(stage.options.some((o) => o.value === 'customer'));
  const created = all.results.find((p) => p.name === 'createdate');
  assert.equal(created.modificationMetadata.readOnlyValue, true);

  const days = await properties.getByName('deals', 'days_to_close');
  assert.equal(days.calculated, true);
  assert.equal(days.fieldType, 'calculation_equation');

  const definition = {
    name: 'favorite_food',
    label: 'Favorite food',
    type: 'enumeration',
    fieldType: 'select',
    groupName: 'contactinformation',
    options: [
      { label: 'Pizza', value: 'pizza', hidden: false, displayOrder: 0 },
      { label: 'Soup', value: 'soup', hidden: false, displayOrder: 1 },
    ],
  };
  const made = await properties.create('contacts', definition);
  assert.equal(made.name, 'favorite_food');
  assert.equal(made.hubspotDefined, false);
  assert.equal(made.options.length, 2);
  assert.equal((await properties.getByName('contacts', 'favorite_food')).label, 'Favorite food');

  const duplicate = await failure(properties.create('contacts', definition));
  assert.equal(duplicate.code, 409);
  const missing = await failure(properties.getByName('contacts', 'no_such_property'));
  assert.equal(missing.code, 404);

  const contact = await hs.crm.contacts.basicApi.create({
    properties: { email: 'food@example.com', favorite_food: 'soup' },
    associations: [],
  });
  assert.equal(contact.properties.favorite_food, 'soup');
});

test('errors: validation, conflict, scopes, authentication and rate limits', async () => {
  const { hubId, tokens, hs } = await portal();
  const contacts = hs.crm.contacts.basicApi;

  const invalid = await failure(contacts.create({ properties: { email: 'v@example.com', shoe_size: '9' }, associations: [] }));
  assert.equal(invalid.code, 400);
  assert.equal(invalid.body.category, 'VALIDATION_ERROR');
  assert.equal(invalid.body.errors[0].code, 'PROPERTY_DOESNT_EXIST');
  assert.deepEqual(invalid.body.errors[0].context.propertyName, ['shoe_size']);
  assert.ok(invalid.body.correlationId);
  assert.ok(invalid.headers['x-hubspot-correlation-id']);

  const readOnly = await failure(contacts.create({ properties: { hs_object_id: '5' }, associations: [] }));
  assert.equal(readOnly.body.errors[0].code, 'READ_ONLY_VALUE');

  const first = await contacts.create({ properties: { email: 'dup@example.com' }, associations: [] });
  const conflict = await failure(contacts.create({ properties: { email: 'dup@example.com' }, associations: [] }));
  assert.equal(conflict.code, 409);
  assert.equal(conflict.body.category, 'CONFLICT');
  assert.equal(conflict.body.message, `Contact already exists. Existing ID: ${first.id}`);

  const missingScope = await failure(hs.crm.companies.basicApi.getPage(1));
  assert.equal(missingScope.code, 403);
  assert.equal(missingScope.body.category, 'MISSING_SCOPES');
  assert.ok(missingScope.body.errors[0].context.requiredGranularScopes.includes('crm.objects.companies.read'));

  const unknown = await failure(client('not-a-token').crm.contacts.basicApi.getPage(1));
  assert.equal(unknown.code, 401);
  assert.equal(unknown.body.category, 'INVALID_AUTHENTICATION');

  const other = await admin('POST', '/_sim/tokens', { hub_id: hubId, scopes: CRM_SCOPES });
  await admin('POST', '/_sim/tokens/expire', { access_token: other.access_token });
  const expired = await failure(client(other.access_token).crm.contacts.basicApi.getPage(1));
  assert.equal(expired.code, 401);
  assert.equal(expired.body.category, 'EXPIRED_AUTHENTICATION');
  assert.match(expired.body.message, /expired \d+ second\(s\) ago/);

  await admin('PUT', `/_sim/portals/${hubId}/rate-limit`, { per_10s: 2 });
  // The portal's window already holds the calls above, so the limit is hit at once or soon.
  let limited;
  for (let i = 0; i < 3 && !limited; i++) {
    try {
      const page = await contacts.getPageWithHttpInfo(1);
      assert.equal(page.headers['x-hubspot-ratelimit-max'], '2');
      assert.equal(page.headers['x-hubspot-ratelimit-interval-milliseconds'], '10000');
    } catch (error) {
      limited = error;
    }
  }
  assert.ok(limited, 'the rate limit never hit');
  assert.equal(limited.code, 429);
  assert.equal(limited.headers['x-hubspot-ratelimit-remaining'], '0');
  assert.equal(tokens.expires_in, 1800);
});

test('associations v4: batch links, labelled links, unlinks and pages', async () => {
  const { hs } = await portal([
    ...CRM_SCOPES,
    'crm.objects.companies.read',
    'crm.objects.companies.write',
  ]);
  const people = await Promise.all(
    ['p1', 'p2', 'p3'].map((p) => hs.crm.contacts.basicApi.create({ properties: { email: `${p}@acme.com` }, associations: [] })),
  );
  const acme = await hs.crm.companies.basicApi.create({ properties: { name: 'Acme' }, associations: [] });
  const batch = hs.crm.associations.v4.batchApi;
  // The client names `from` `_from` (a reserved word in its generator) and sends it as `from`.

  const made = await batch.createDefault('contacts', 'companies', {
    inputs: people.slice(0, 2).map((p) => ({ _from: { id: p.id }, to: { id: acme.id } })),
  });
  assert.equal(made.status, 'COMPLETE');
  assert.equal(made.results.length, 4);
  assert.equal(made.results[0].associationSpec.associationTypeId, 279);

  const labelled = await batch.create('contacts', 'companies', {
    inputs: [{ _from: { id: people[2].id }, to: { id: acme.id }, types: [{ associationCategory: 'HUBSPOT_DEFINED', associationTypeId: 1 }] }],
  });
  assert.deepEqual(labelled.results[0].labels, ['Primary']);

  const pages = [];
  let after;
  do {
    const page = await hs.crm.associations.v4.basicApi.getPage('companies', acme.id, 'contacts', after, 2);
    pages.push(page.results.map((r) => String(r.toObjectId)));
    after = page.paging?.next?.after;
  } while (after);
  assert.deepEqual(pages.flat(), people.map((p) => p.id).sort((a, b) => a - b));
  assert.ok(pages.length > 1, 'more than one page');

  await batch.archive('companies', 'contacts', { inputs: [{ _from: { id: acme.id }, to: [{ id: people[0].id }] }] });
  const read = await batch.getPage('contacts', 'companies', { inputs: people.map((p) => ({ id: p.id })) });
  assert.deepEqual(read.results.map((r) => r._from.id).sort(), [people[1].id, people[2].id].sort());
  assert.equal(read.errors.length, 1, 'the unlinked contact is a per-input error');
  assert.equal(read.results[0].to[0].associationTypes[0].typeId, 279);
});

test('objects: created with links, read with them, merged', async () => {
  const { hs } = await portal([...CRM_SCOPES, 'crm.objects.companies.read', 'crm.objects.companies.write']);
  const acme = await hs.crm.companies.basicApi.create({ properties: { name: 'Acme' }, associations: [] });
  const ada = await hs.crm.contacts.basicApi.create({
    properties: { email: 'ada@acme.com' },
    associations: [{ to: { id: acme.id }, types: [{ associationCategory: 'HUBSPOT_DEFINED', associationTypeId: 279 }] }],
  });
  const got = await hs.crm.contacts.basicApi.getById(ada.id, ['email'], undefined, ['companies']);
  assert.equal(got.associations.companies.results[0].id, acme.id);
  assert.equal(got.associations.companies.results[0].type, 'contact_to_company_unlabeled');

  const twin = await hs.crm.contacts.basicApi.create({ properties: { email: 'ada@home.example.com', firstname: 'Ada' }, associations: [] });
  const merged = await hs.crm.contacts.basicApi.merge({ primaryObjectId: ada.id, objectIdToMerge: twin.id });
  assert.equal(merged.id, ada.id);
  assert.equal(merged.properties.firstname, 'Ada');
});

test('lists: a dynamic list comes back with its filters normalised', async () => {
  const { hs } = await portal([...CRM_SCOPES, 'crm.lists.read', 'crm.lists.write']);
  const created = await hs.crm.lists.listsApi.create({
    name: 'Customers',
    objectTypeId: '0-1',
    processingType: 'DYNAMIC',
    filterBranch: {
      filterBranchType: 'OR',
      filterBranches: [{
        filterBranchType: 'AND',
        filterBranches: [],
        filters: [{
          filterType: 'PROPERTY',
          property: 'lifecyclestage',
          operation: { operationType: 'ENUMERATION', operator: 'IS_ANY_OF', values: ['customer'] },
        }],
      }],
      filters: [],
    },
  });
  assert.equal(created.list.processingStatus, 'PROCESSING');
  const read = await hs.crm.lists.listsApi.getById(created.list.listId, true);
  assert.equal(read.list.filterBranch.filterBranchOperator, 'OR');
  const property = read.list.filterBranch.filterBranches[0].filters[0];
  assert.equal(property.operation.includeObjectsWithNoValueSet, false);
  const plain = await hs.crm.lists.listsApi.getById(created.list.listId);
  assert.equal(plain.list.filterBranch, undefined);
});
